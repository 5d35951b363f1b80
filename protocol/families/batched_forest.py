"""Batched random forests: B × T Gini trees grown as scikit-learn grows them, in numpy.

Reproduces ``RandomForestClassifier(n_estimators=T, random_state=R, max_depth=D)`` with its
other defaults (bootstrap, ``max_features="sqrt"``, ``min_samples_leaf=1``) on each of B
training sets ``(m, d)`` sharing one label vector, tree for tree and split for split:

* **seeds**: tree ``t`` gets the t-th ``RandomState(R).randint(2**31 - 1)``; its bootstrap
  counts are the ``bincount`` of ``RandomState(seed_t).randint(0, m, m)`` (they act as sample
  weights; rows with count 0 are not in the tree) and its splitter's xorshift stream starts at
  ``RandomState(seed_t).randint(0, 2**31 - 1)``. All B sets share the T seeds.
* **feature draws**: every split node draws features by scikit-learn's Fisher–Yates loop
  (``node_split_best``) from the tree's xorshift stream, with its bookkeeping of known and
  newly found constant features and the per-tree ``features`` permutation that carries over
  from node to node. Nodes are visited in scikit-learn's depth-first, left-first order, one
  node per tree per step, vectorised over all B × T trees.
* **splits**: candidate positions lie between consecutive members of the node (in the set's
  presorted float32 order) more than ``1e-7`` apart in float32; the threshold is
  ``v_prev / 2 + v_next / 2`` in float64; the score is the weighted Gini proxy
  ``-(w_R · gini_R) - w_L · gini_L`` computed with the same float64 operations (bootstrap
  counts are integers, so every sum is exact); ties go to the first position, then to the
  first feature drawn. Stopping rules and leaf values (``count_c / w``) are scikit-learn's.
* **prediction**: the mean of the trees' leaf fractions, accumulated tree by tree and divided
  by T as ``predict_proba`` does, so the probabilities are equal bit for bit.

Nodes are stored in a compact list per tree (children of a split node are the next two free
slots; at most ``2m - 1`` nodes); a leaf points to itself, so prediction walks every record
down a fixed number of levels without masks.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .batched_tree import _EPSILON, _FEATURE_THRESHOLD, _RAND_R_MAX, _gini_terms, _score_table

_MAX_INT = np.iinfo(np.int32).max
_INF32 = np.float32(np.inf)


@dataclass
class ForestBatch:
    """B forests of T trees in compact node lists (tree ``g = b·T + t``).

    Attributes
    ----------
    feature:
        ``(B·T, N)`` split feature of each node (0 at leaves and unused slots).
    threshold:
        ``(B·T, N)`` float64 thresholds (go left when ``x <= threshold``; ``+inf`` at leaves).
    children:
        ``(B·T, N, 2)`` left and right child of each node (a leaf points to itself).
    left_heavy:
        ``(B·T, N)`` whether the left child got more rows (where a missing value goes).
    value:
        ``(B·T, N, K)`` class fractions of every node.
    n_trees:
        T, trees per forest.
    tree_depth:
        ``(B·T,)`` largest depth of a leaf in each tree: the levels a prediction walks.
    """

    feature: np.ndarray
    threshold: np.ndarray
    children: np.ndarray
    left_heavy: np.ndarray
    value: np.ndarray
    n_trees: int
    tree_depth: np.ndarray

    @property
    def n_sets(self) -> int:
        return self.feature.shape[0] // self.n_trees


@functools.lru_cache(maxsize=32)
def tree_seeds(random_state: int, n_trees: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-tree ``(bootstrap seeds (T,), splitter xorshift states (T,) uint32)`` of a forest
    with ``random_state`` (as ``_set_random_states`` and ``Splitter.init`` draw them)."""
    rs = np.random.RandomState(random_state)
    seeds = np.array([rs.randint(_MAX_INT) for _ in range(n_trees)], dtype=np.int64)
    states = np.array([np.random.RandomState(s).randint(0, _RAND_R_MAX) for s in seeds],
                      dtype=np.int64)
    return seeds, np.where(states == 0, 1, states).astype(np.uint32)  # rand_r: 0 → 1


@functools.lru_cache(maxsize=32)
def bootstrap_counts(random_state: int, n_trees: int, m: int) -> np.ndarray:
    """``(T, m)`` bootstrap counts of each tree (``_generate_sample_indices``)."""
    seeds, _ = tree_seeds(random_state, n_trees)
    return np.stack([np.bincount(np.random.RandomState(s).randint(0, m, m).astype(np.int32),
                                 minlength=m) for s in seeds])


def max_features(n_features: int) -> int:
    """``max_features="sqrt"``: ``max(1, int(sqrt(d)))``."""
    return max(1, int(np.sqrt(n_features)))


class _Grower:
    """State of B × T trees grown one node per tree per step (depth-first, left first)."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, n_classes: int, n_trees: int,
                 random_state: int, max_depth: int | None) -> None:
        X32 = np.asarray(X, dtype=np.float32)
        B, m, d = X32.shape
        self.m, self.d, self.k, self.T = m, d, n_classes, n_trees
        self.max_depth = np.iinfo(np.int64).max if max_depth is None else max_depth
        self.mf = max_features(d)
        N = B * n_trees
        self.XT = np.ascontiguousarray(X32.transpose(0, 2, 1))  # (B, d, m)
        order = np.argsort(self.XT, axis=2, kind="stable")
        self.order = order.reshape(B * d, m)
        self.xs = np.take_along_axis(self.XT, order, axis=2).reshape(B * d, m)
        self.set_of = np.repeat(np.arange(B), n_trees)
        self.tree_of = np.tile(np.arange(n_trees), B)
        counts = bootstrap_counts(int(random_state), n_trees, m)
        self.W = counts.astype(np.int64)  # (T, m) integer weights
        self.labels = np.asarray(labels, dtype=np.int64)
        self.onehot = np.eye(n_classes, dtype=np.int64)[self.labels]  # (m, K)
        self.table = _score_table(m) if n_classes == 2 else None
        self.code = (m + 1) + self.labels  # two classes: w · code = w · (m + 1) + w · y
        self.rng = np.tile(tree_seeds(int(random_state), n_trees)[1], B)
        self.features = np.tile(np.arange(d, dtype=np.int64), (N, 1))
        self.constants = np.zeros((N, d), dtype=np.int64)
        self.row_node = np.where(counts[self.tree_of] > 0, 0, -1).astype(np.int32)  # (N, m)
        cap = m + 2
        self.stack = np.zeros((N, cap, 3), dtype=np.int64)  # (node, depth, n_constants)
        self.sp = np.ones(N, dtype=np.int64)
        self.n_nodes = np.ones(N, dtype=np.int64)
        S = max(2 * m - 1, 1)
        self.feature = np.zeros((N, S), dtype=np.int64)
        self.threshold = np.full((N, S), np.inf)
        self.children = np.tile(np.arange(S, dtype=np.int64)[None, :, None], (N, 1, 2))
        self.left_heavy = np.zeros((N, S), dtype=bool)
        self.value = np.zeros((N, S, n_classes))
        self.tree_depth = np.zeros(N, dtype=np.int64)

    def grow(self) -> ForestBatch:
        """Pop one node per tree until every stack is empty."""
        while True:
            a = np.flatnonzero(self.sp > 0)
            if not len(a):
                break
            self.sp[a] -= 1
            node, depth, nconst = self.stack[a, self.sp[a]].T
            self.tree_depth[a] = np.maximum(self.tree_depth[a], depth)
            member = self.row_node[a] == node[:, None]  # (A, m)
            w = np.where(member, self.W[self.tree_of[a]], 0)
            counts = w @ self.onehot  # (A, K) integer class weights
            wn = counts.sum(axis=1).astype(np.float64)
            self.value[a, node] = counts / wn[:, None]
            imp = _gini_terms(list(counts.T.astype(np.float64)), wn)[0]
            split = (member.sum(axis=1) >= 2) & (imp > _EPSILON) & (depth < self.max_depth)
            if split.any():
                w = w[split]
                self._split(a[split], node[split], depth[split], nconst[split], member[split],
                            w if self.table is None else w * self.code, counts[split],
                            imp[split])
        return ForestBatch(self.feature, self.threshold, self.children, self.left_heavy,
                           self.value, self.T, self.tree_depth)

    def _split(self, g: np.ndarray, node: np.ndarray, depth: np.ndarray, nconst: np.ndarray,
               member: np.ndarray, w: np.ndarray, counts: np.ndarray, imp: np.ndarray) -> None:
        """Split nodes ``node`` of trees ``g`` (where a split improves) and push the children.
        ``w``: the members' weights, or with two classes their codes (see :meth:`_evaluate`)."""
        f, thr, n_total = self._node_split(g, nconst, member, w, counts)
        found = np.isfinite(thr)
        go_left = self.XT[self.set_of[g], f, :] <= thr[:, None]  # (A, m)
        left = member & go_left
        n_left = left.sum(axis=1)
        heavy = n_left > member.sum(axis=1) - n_left
        cl = np.where(left, self.W[self.tree_of[g]], 0) @ self.onehot
        found &= self._improvement(counts, cl, imp) + _EPSILON >= 0.0
        if not found.any():
            return
        g, node, depth, n_total, member, left = (
            v[found] for v in (g, node, depth, n_total, member, left))
        lid = self.n_nodes[g]
        self.n_nodes[g] += 2
        self.feature[g, node], self.threshold[g, node] = f[found], thr[found]
        self.left_heavy[g, node] = heavy[found]
        self.children[g, node, 0], self.children[g, node, 1] = lid, lid + 1
        rows = self.row_node[g]
        self.row_node[g] = np.where(left, lid[:, None],
                                    np.where(member, (lid + 1)[:, None], rows))
        sp = self.sp[g]
        self.stack[g, sp] = np.stack([lid + 1, depth + 1, n_total], axis=1)  # right first
        self.stack[g, sp + 1] = np.stack([lid, depth + 1, n_total], axis=1)
        self.sp[g] += 2

    def _improvement(self, counts: np.ndarray, cl: np.ndarray, imp: np.ndarray) -> np.ndarray:
        """scikit-learn's ``impurity_improvement`` of each split (its leaf rule)."""
        cr = counts - cl
        wn = counts.sum(axis=1).astype(np.float64)
        wl, wr = cl.sum(axis=1).astype(np.float64), cr.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            il = _gini_terms(list(cl.T.astype(np.float64)), wl)[0]
            ir = _gini_terms(list(cr.T.astype(np.float64)), wr)[0]
            return (wn / float(self.m)) * (imp - (wr / wn * ir) - (wl / wn * il))

    def _node_split(self, g: np.ndarray, nconst: np.ndarray, member: np.ndarray,
                    w: np.ndarray, counts: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """scikit-learn's ``node_split_best`` for one node of each tree ``g``: the feature
        draws and constant-feature bookkeeping, and the best split of the drawn features.

        Returns
        -------
        feature, threshold, n_constants:
            ``(A,)`` each; ``threshold`` is ``inf`` where no split was found.
        """
        A, F = len(g), self.features
        f_i = np.full(A, self.d)
        found_c, drawn_c = np.zeros(A, dtype=np.int64), np.zeros(A, dtype=np.int64)
        known, total, visited = nconst, nconst.copy(), np.zeros(A, dtype=np.int64)
        best, best_f = np.full(A, -np.inf), np.zeros(A, dtype=np.int64)
        best_thr = np.full(A, np.inf)
        while True:
            j = np.flatnonzero((f_i > total) & ((visited < self.mf)
                                                | (visited <= found_c + drawn_c)))
            if not len(j):
                break
            gj = g[j]
            visited[j] += 1
            self.rng[gj] = state = _xorshift(self.rng[gj])
            r = (state % np.uint32(_RAND_R_MAX + 1)).astype(np.int64)
            f_j = drawn_c[j] + r % (f_i[j] - found_c[j] - drawn_c[j])
            was = f_j < known[j]  # a constant known from an ancestor: set aside
            _swap(F, gj[was], drawn_c[j[was]], f_j[was])
            drawn_c[j[was]] += 1
            j, gj, f_j = j[~was], gj[~was], f_j[~was] + found_c[j[~was]]
            feat = F[gj, f_j]
            const, proxy, thr = self._evaluate(gj, feat, member[j], w[j], counts[j])
            jc = j[const]  # newly found constant
            _swap(F, gj[const], f_j[const], total[jc])
            found_c[jc] += 1
            total[jc] += 1
            keep = ~const
            j, gj, f_j, feat, proxy, thr = (v[keep] for v in (j, gj, f_j, feat, proxy, thr))
            f_i[j] -= 1
            _swap(F, gj, f_i[j], f_j)
            better = proxy > best[j]
            j = j[better]
            best[j], best_f[j], best_thr[j] = proxy[better], feat[better], thr[better]
        cols = np.arange(self.d)[None, :]
        F[g] = np.where(cols < known[:, None], self.constants[g], F[g])
        newly = (cols >= known[:, None]) & (cols < total[:, None])
        self.constants[g] = np.where(newly, F[g], self.constants[g])
        return best_f, np.where(np.isfinite(best), best_thr, np.inf), total

    def _evaluate(self, g: np.ndarray, feat: np.ndarray, member: np.ndarray, w: np.ndarray,
                  counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feature ``feat`` in the node of each tree ``g``: whether it is constant there, and
        its best split's proxy (``-inf`` if none) and threshold.

        With two classes ``w`` holds each member's code ``w · (m + 1) + w · y``: its cumulative
        sum is the left child's index ``(w_L, count_L of class 1)`` into the score table."""
        m = self.m
        at = (self.set_of[g] * self.d + feat)[:, None] * m + np.arange(m)
        rows = self.order.ravel()[at]  # (E, m) rows in the set's order of feature feat
        xv = self.xs.ravel()[at]
        mem = np.take_along_axis(member, rows, axis=1)
        # value of the next member after each position (inf after the last one)
        suffix = np.minimum.accumulate(np.where(mem, xv, _INF32)[:, ::-1], axis=1)[:, ::-1]
        nxt = np.concatenate([suffix[:, 1:], np.full((len(g), 1), _INF32)], axis=1)
        top = np.where(mem, xv, -_INF32).max(axis=1)
        const = top <= suffix[:, 0] + _FEATURE_THRESHOLD
        valid = mem & (nxt > xv + _FEATURE_THRESHOLD) & (nxt < _INF32)
        wl = np.cumsum(np.take_along_axis(w, rows, axis=1), axis=1)
        if self.table is not None:
            score = -self.table[w.sum(axis=1)[:, None] - wl] - self.table[wl]
        else:
            wv = np.take_along_axis(w, rows, axis=1)
            cl = [np.cumsum(wv * self.onehot[rows, c], axis=1).astype(np.float64)
                  for c in range(self.k)]
            cr = [counts[:, c:c + 1] - cl[c] for c in range(self.k)]
            wlf, wn = wl.astype(np.float64), counts.sum(axis=1)[:, None]
            with np.errstate(divide="ignore", invalid="ignore"):
                score = -_gini_terms(cr, wn - wlf)[1] - _gini_terms(cl, wlf)[1]
        score = np.where(valid, score, -np.inf)
        pos = score.argmax(axis=1)[:, None]
        proxy = np.take_along_axis(score, pos, axis=1)[:, 0]
        lo = np.take_along_axis(xv, pos, axis=1)[:, 0].astype(np.float64)
        hi = np.take_along_axis(nxt, pos, axis=1)[:, 0].astype(np.float64)
        return const, proxy, lo / 2.0 + hi / 2.0


def _xorshift(state: np.ndarray) -> np.ndarray:
    """scikit-learn's ``our_rand_r`` state update (32-bit xorshift), vectorised."""
    state = state ^ (state << np.uint32(13))
    state = state ^ (state >> np.uint32(17))
    return state ^ (state << np.uint32(5))


def _swap(F: np.ndarray, g: np.ndarray, i: np.ndarray, j: np.ndarray) -> None:
    """Swap ``F[g, i]`` and ``F[g, j]`` row by row (``g`` distinct)."""
    a, b = F[g, i], F[g, j]
    F[g, i], F[g, j] = b, a


def fit(X: np.ndarray, labels: np.ndarray, n_classes: int, n_estimators: int = 100,
        random_state: int = 0, max_depth: int | None = None) -> ForestBatch:
    """Grow one forest per set of ``X (B, m, d)`` (finite values) on ``labels (m,)``."""
    return _Grower(X, labels, n_classes, n_estimators, random_state, max_depth).grow()


def predict_proba(forest: ForestBatch, X_real: np.ndarray, chunk: int = 1 << 18) -> np.ndarray:
    """``(B, n, K)`` mean leaf fractions of each forest's trees for real records ``(n, d)``.

    Records walk down the trees level by level (a leaf points to itself); trees are summed in
    order and divided by T, as scikit-learn accumulates them. Sets are processed in chunks of
    about ``chunk`` (tree, record) pairs, small enough to stay in cache.
    """
    x = np.asarray(X_real, dtype=np.float32).astype(np.float64)
    n = x.shape[0]
    T, N, K = forest.n_trees, forest.feature.shape[0], forest.value.shape[2]
    B = N // T
    xt = np.ascontiguousarray(x.T).ravel()  # (d · n,)
    missing = bool(np.isnan(x).any())
    out = np.zeros((B, n, K))
    step = max(1, chunk // max(T * n, 1))
    r = np.arange(n)[None, :]
    for b0 in range(0, B, step):
        g = slice(b0 * T, min(B, b0 + step) * T)
        j, walk = _walk_tables(forest, g, n)
        for _ in range(int(forest.tree_depth[g].max())):
            v = xt[walk[0][j] + r]
            right = v > walk[1][j]
            if missing:
                right = np.where(np.isnan(v), walk[2][j] == 0, right)
            j = walk[3][j + right]
        leaf = forest.value[g].reshape(-1, K)[j // 2].reshape(-1, T, n, K)
        acc = out[b0:b0 + len(leaf)]
        for t in range(T):
            acc += leaf[:, t]
    out /= T
    return out


def _walk_tables(forest: ForestBatch, g: slice, n: int
                 ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Start positions ``(trees, n)`` and lookup tables of trees ``g``, indexed by twice the
    node's index in the chunk (each entry stored twice, so that ``j + go_right`` picks a
    child): column offset ``feature · n``, threshold, left-heavy flag, and twice the child."""
    n_g, S = forest.feature[g].shape
    offset = (np.arange(n_g) * S)[:, None]
    twice = [np.repeat(a.ravel(), 2) for a in (forest.feature[g] * n, forest.threshold[g],
                                             forest.left_heavy[g].astype(np.int64))]
    children = (2 * (forest.children[g] + offset[:, :, None])).ravel()
    start = np.repeat(2 * offset, n, axis=1)
    return start, (*twice, children)
