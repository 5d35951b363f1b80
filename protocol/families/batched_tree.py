"""Batched CART: B depth-limited Gini trees, grown as scikit-learn grows them, in numpy.

Reproduces ``DecisionTreeClassifier(max_depth=D, random_state=R)`` (``splitter="best"``,
``max_features=None``, no sample weights, ``min_samples_split=2``, ``min_samples_leaf=1``)
on each of B training sets ``(m, d)`` sharing one label vector, node for node:

* inputs are cast to float32 (as scikit-learn does); candidate splits lie between
  consecutive distinct values of a node's rows (gaps ≤ 1e-7 in float32 are ties), the
  threshold is ``v_prev / 2 + v_next / 2`` in float64;
* the split score is scikit-learn's Gini *proxy improvement*
  ``-(n_R · gini_R) - n_L · gini_L`` with ``gini = 1 - Σ_c count_c² / n²``, computed with the
  same float64 operations in the same order, so equal scores are equal bit for bit;
* **ties** go to the first split scikit-learn visits: the smallest position within a
  feature, and between features the one its splitter draws first. The splitter draws the
  features of each node in a Fisher–Yates order from a xorshift stream seeded by
  ``RandomState(R).randint(0, 2**31 - 1)``, and the order depends only on how many nodes
  were split before (in depth-first, left-first order) — *as long as no feature is
  constant within a node that is split* (a constant feature changes the draws). Such trees
  are reported in ``needs_reference`` and refitted by the caller with scikit-learn itself;
* a node is a leaf at depth D, below 2 rows, with Gini ≤ machine ε, or when no feature has
  two distinct values; leaf values are class fractions ``count_c / n`` (as
  ``tree_.value``), so ``predict_proba`` agrees exactly.

Trees are stored in heap layout (children of node i at 2i + 1 and 2i + 2); the build visits
the 2^D - 1 possible internal nodes in depth-first order, vectorised over the trees.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

_RAND_R_MAX = 2147483647
_FEATURE_THRESHOLD = np.float32(1e-7)
_EPSILON = np.finfo(np.float64).eps


@dataclass
class TreeBatch:
    """B fitted trees in heap layout.

    Attributes
    ----------
    feature:
        ``(B, 2^D - 1)`` split feature of each internal slot, -1 where the node is a leaf
        or does not exist.
    threshold:
        ``(B, 2^D - 1)`` float64 thresholds (go left when ``x <= threshold``).
    left_heavy:
        ``(B, 2^D - 1)`` whether the left child got more rows (where scikit-learn sends a
        missing value at prediction time).
    value:
        ``(B, 2^(D+1) - 1, K)`` class fractions of every node (zeros where absent).
    needs_reference:
        ``(B,)`` trees whose split order this kernel cannot reproduce (a constant feature
        in a split node); their slots are meaningless and must be refitted.
    """

    feature: np.ndarray
    threshold: np.ndarray
    left_heavy: np.ndarray
    value: np.ndarray
    needs_reference: np.ndarray

    @property
    def depth(self) -> int:
        return int(np.log2(self.feature.shape[1] + 1))


def _xorshift(state: int) -> int:
    state ^= (state << 13) & 0xFFFFFFFF
    state ^= state >> 17
    state ^= (state << 5) & 0xFFFFFFFF
    return state


@functools.lru_cache(maxsize=64)
def visit_ranks(n_features: int, n_calls: int, random_state: int) -> np.ndarray:
    """``(n_calls, d)``: rank at which scikit-learn's best splitter evaluates each feature in
    its k-th ``node_split`` call, when no feature was found constant (see module doc)."""
    return ranks_from_state(n_features, n_calls,
                            int(np.random.RandomState(random_state).randint(0, _RAND_R_MAX)))


def ranks_from_state(n_features: int, n_calls: int, state: int) -> np.ndarray:
    """:func:`visit_ranks` of a splitter whose xorshift state starts at ``state`` (the draw
    ``randint(0, 2**31 - 1)`` a tree takes from its ``random_state``; 0 becomes 1)."""
    state = state or 1
    features = list(range(n_features))
    ranks = np.empty((n_calls, n_features), dtype=np.int64)
    for k in range(n_calls):
        f_i = n_features
        for visit in range(n_features):
            state = _xorshift(state)
            f_j = (state % (_RAND_R_MAX + 1)) % f_i
            ranks[k, features[f_j]] = visit
            f_i -= 1
            features[f_i], features[f_j] = features[f_j], features[f_i]
    return ranks


@functools.lru_cache(maxsize=16)
def preorder_slots(depth: int) -> tuple[int, ...]:
    """Heap indices of the internal slots of a depth-``depth`` tree, depth-first, left first."""
    out: list[int] = []
    stack = [0]
    while stack:
        i = stack.pop()
        if i < 2**depth - 1:
            out.append(i)
            stack.extend((2 * i + 2, 2 * i + 1))
    return tuple(out)


def _gini_terms(counts: list[np.ndarray], n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(1 - Σ_c count_c² / n², n · that)`` with scikit-learn's operation order (classes
    summed first to last, from 0.0)."""
    sq = counts[0] * counts[0]
    for c in counts[1:]:
        sq = sq + c * c
    with np.errstate(divide="ignore", invalid="ignore"):
        gini = 1.0 - sq / (n * n)
        return gini, n * gini


def _splittable(bi: np.ndarray, idx: np.ndarray, n: np.ndarray, cls: list[np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                           list[np.ndarray]]:
    """Of a node's pending trees, those it can be split in (≥ 2 rows, impure):
    ``(trees, sorted row indices, counts, counts as float, inside mask (b, M), class counts)``."""
    inside = np.arange(idx.shape[2])[None, :] < n[:, None]  # (b, M)
    first = idx[:, 0, :]  # rows in the order of feature 0
    counts = [np.where(inside, c[first], 0.0).sum(axis=1) for c in cls]
    nf = n.astype(np.float64)
    active = (n >= 2) & (_gini_terms(counts, nf)[0] > _EPSILON)
    if not active.all():
        bi, idx, n, nf, inside = bi[active], idx[active], n[active], nf[active], inside[active]
        counts = [c[active] for c in counts]
    return bi, idx, n, nf, inside, counts


def _split_proxy(idx: np.ndarray, inside: np.ndarray, n: np.ndarray, nf: np.ndarray,
                 counts: list[np.ndarray], cls: list[np.ndarray], table: np.ndarray | None,
                 y1: np.ndarray | None, m: int) -> np.ndarray:
    """Impurity-decrease proxy of the split after each sorted position, ``(b, d, M - 1)``:
    by (rows, class-1 count) from ``table`` with two classes, else from Gini terms."""
    M = idx.shape[2]
    if table is not None and y1 is not None:  # two classes: scores by (n, count of class 1)
        counts1 = counts[-1].astype(np.int64)
        # prefix sums by a triangular matmul: exact for 0/1 entries, and several times
        # faster than cumsum along a short last axis
        c1 = _prefix_sums(np.where(inside[:, None, :], y1[idx], 0.0), _prefix_matrix(M))
        left = c1 + (np.arange(1, M) * (m + 1))[None, None, :]
        # (n - i)(m + 1) + (count_1 - c1) = n (m + 1) + count_1 - left
        right = (n * (m + 1) + counts1)[:, None, None] - left
        return -table[right] - table[left]
    nl = np.arange(1.0, M)[None, None, :]
    nr = nf[:, None, None] - nl
    cl = [np.cumsum(np.where(inside[:, None, :], c[idx], 0.0), axis=2)[:, :, :-1] for c in cls]
    cr = [t[:, None, None] - c for t, c in zip(counts, cl)]
    return -_gini_terms(cr, nr)[1] - _gini_terms(cl, nl)[1]


def _carry(bi: np.ndarray, idx: np.ndarray, inside: np.ndarray, rows_in: np.ndarray,
           cnt: np.ndarray, onehot: np.ndarray, r: np.ndarray,
           m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """A child's pending entry (trees, sorted row indices, row counts) for the trees where it
    will be split (≥ 2 rows, impure); ``None`` if none."""
    grow = (cnt >= 2) & (_gini_terms(list((rows_in @ onehot).T),
                                     cnt.astype(np.float64))[0] > _EPSILON)
    if not grow.any():
        return None
    keep = np.take(rows_in[grow], r[:grow.sum(), None, None] * m + idx[grow]) \
        & inside[grow][:, None, :]
    return bi[grow], _compact(idx[grow], keep, int(cnt[grow].max())), cnt[grow]


def fit(X: np.ndarray, labels: np.ndarray, n_classes: int, max_depth: int = 4,
        random_state: int = 0) -> TreeBatch:
    """Grow one tree per set of ``X (B, m, d)`` (finite values) on ``labels (m,)``.

    Each node keeps, per tree and feature, the row indices of its rows sorted by that
    feature (``(b, d, M)``, the node's rows first, M the largest row count of the node over
    the trees); a split stably partitions them into the children's.
    """
    X32 = np.asarray(X, dtype=np.float32)
    B, m, d = X32.shape
    S = 2**max_depth - 1
    labels = np.asarray(labels, dtype=np.int64)
    onehot = np.eye(n_classes)[labels]  # (m, K)
    cls = [np.ascontiguousarray(onehot[:, c]) for c in range(n_classes)]
    XT = np.ascontiguousarray(X32.transpose(0, 2, 1))  # (B, d, m)
    ranks = visit_ranks(d, S, int(random_state))
    table = _score_table(m) if n_classes == 2 else None
    y1 = labels.astype(np.int64) if n_classes == 2 else None

    node = np.zeros((B, m), dtype=np.int64)  # heap index of each row's current node
    calls = np.zeros(B, dtype=np.int64)
    feature = np.full((B, S), -1, dtype=np.int64)
    threshold = np.zeros((B, S))
    left_heavy = np.zeros((B, S), dtype=bool)
    needs_reference = np.zeros(B, dtype=bool)
    feats = np.arange(d)[None, :, None]
    # per slot: (trees, sorted row indices (b, d, M), row counts (b,))
    pending = {0: (np.arange(B), _stable_argsort(XT), np.full(B, m))}

    for s in preorder_slots(max_depth):
        if s not in pending:
            continue
        bi, idx, n, nf, inside, counts = _splittable(*pending.pop(s), cls)
        pos = np.arange(idx.shape[2])
        if not len(bi):
            continue
        base = (bi[:, None, None] * d + feats) * m  # flat offsets into XT (B, d, m)
        x = np.take(XT, base + idx)  # (b, d, M) sorted values
        # splits after position i < n - 1 between distinct (> 1e-7 apart) neighbours
        valid = (pos[None, None, :-1] < (n - 1)[:, None, None]) \
            & (x[:, :, 1:] > x[:, :, :-1] + _FEATURE_THRESHOLD)
        proxy = np.where(valid, _split_proxy(idx, inside, n, nf, counts, cls, table, y1, m),
                         -np.inf)
        at = proxy.argmax(axis=2)  # (b, d): first best position per feature
        best = np.take_along_axis(proxy, at[:, :, None], axis=2)[:, :, 0]
        # a feature with one distinct value among the node's rows changes the draws
        last = np.take_along_axis(x, (n - 1)[:, None, None].repeat(d, 1), axis=2)[:, :, 0]
        needs_reference[bi[(last <= x[:, :, 0] + _FEATURE_THRESHOLD).any(axis=1)]] = True
        top = best.max(axis=1, keepdims=True)
        f = np.where(best == top, ranks[calls[bi]], d + 1).argmin(axis=1)  # (b,)
        calls[bi] += 1
        splits = np.isfinite(top[:, 0])
        if not splits.all():
            bi, idx, n, x, f, at, inside = (a[splits] for a in (bi, idx, n, x, f, at, inside))
        if not len(bi):
            continue
        r = np.arange(len(bi))
        p = at[r, f]
        thr = x[r, f, p].astype(np.float64) / 2.0 + x[r, f, p + 1].astype(np.float64) / 2.0
        feature[bi, s], threshold[bi, s] = f, thr
        n_left = p + 1
        left_heavy[bi, s] = n_left > n - n_left
        go_left = XT[bi, f, :] <= thr[:, None]  # (b, m)
        member = node[bi] == s
        node[bi] = np.where(member, np.where(go_left, 2 * s + 1, 2 * s + 2), node[bi])
        if 2 * s + 1 >= S:  # the children are leaf slots: nothing more to grow
            continue
        to_left = member & go_left
        for child, rows_in, cnt in ((2 * s + 1, to_left, n_left), (2 * s + 2, member & ~go_left,
                                                                      n - n_left)):
            carried = _carry(bi, idx, inside, rows_in, cnt, onehot, r, m)
            if carried is not None:
                pending[child] = carried

    value = _node_values(node, onehot, max_depth)
    return TreeBatch(feature, threshold, left_heavy, value, needs_reference)


@functools.lru_cache(maxsize=16)
def _prefix_matrix(M: int) -> np.ndarray:
    """``(M, M - 1)`` 0/1 matrix whose product with a row gives its first M - 1 prefix sums."""
    return np.triu(np.ones((M, M)))[:, :-1]


def _prefix_sums(a: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Integer prefix sums along the last axis of 0/1 ``a (b, d, M)`` as one 2-D product with
    a triangular 0/1 matrix (exact: small integers), as ``int64``."""
    b, d, M = a.shape
    return (a.reshape(b * d, M).astype(np.float64) @ tri).reshape(b, d, -1).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _inclusive_prefix_matrix(M: int) -> np.ndarray:
    """``(M, M)`` 0/1 matrix whose product with a row gives its M prefix sums."""
    return np.triu(np.ones((M, M)))


def _stable_argsort(x: np.ndarray) -> np.ndarray:
    """``np.argsort(x, axis=-1, kind="stable")`` of finite float32 values, by sorting one
    uint64 key per entry (order-preserving bits of the value, then the position): ~3× faster
    on rows of a few dozen entries."""
    # + 0 turns -0.0 into +0.0: the two are equal, and must stay in position order
    bits = (np.asarray(x, dtype=np.float32) + np.float32(0.0)).view(np.uint32)
    # IEEE order: negative values have every bit flipped, non-negative ones the sign bit
    flip = np.where(bits >> np.uint32(31), np.uint32(0xFFFFFFFF), np.uint32(0x80000000))
    key = (bits ^ flip).astype(np.uint64) << np.uint64(32)
    key |= np.arange(x.shape[-1], dtype=np.uint64)
    return (np.sort(key, axis=-1) & np.uint64(0xFFFFFFFF)).astype(np.int64)


@functools.lru_cache(maxsize=16)
def _score_table(m: int) -> np.ndarray:
    """Flat ``((m+1)², )`` table of ``n · gini`` for two classes, index ``n · (m+1) + c_1``
    (computed by :func:`_gini_terms`, so bit for bit the formula's values)."""
    n, c1 = np.meshgrid(np.arange(m + 1.0), np.arange(m + 1.0), indexing="ij")
    table = _gini_terms([n - c1, c1], n)[1]
    return np.where(np.isfinite(table), table, 0.0).ravel()


def _compact(idx: np.ndarray, keep: np.ndarray, width: int) -> np.ndarray:
    """The entries of ``idx (b, d, M)`` where ``keep``, moved to the front in their order,
    padded with row 0 to ``width``."""
    b, d, M = idx.shape
    dest = _prefix_sums(keep, _inclusive_prefix_matrix(M)) - 1
    # entries not kept land in a spare last column, dropped at the end
    dest = np.where(keep, dest, width) + (np.arange(b * d) * (width + 1)).reshape(b, d, 1)
    out = np.zeros(b * d * (width + 1), dtype=idx.dtype)
    out[dest.ravel()] = idx.ravel()
    return out.reshape(b, d, width + 1)[:, :, :width]


def _node_values(node: np.ndarray, onehot: np.ndarray, max_depth: int) -> np.ndarray:
    """Class fractions of every heap node, from the final leaf of each row (integer counts
    summed up the levels: exact)."""
    B, m = node.shape
    k = onehot.shape[1]
    counts = np.zeros((B, 2 ** (max_depth + 1) - 1, k))
    np.add.at(counts, (np.repeat(np.arange(B), m), node.ravel()), np.tile(onehot, (B, 1)))
    for level in range(max_depth, 0, -1):
        first = 2**level - 1
        children = counts[:, first:2 * first + 1].reshape(B, 2 ** (level - 1), 2, k)
        counts[:, (first - 1) // 2:first] += children.sum(axis=2)
    n = counts.sum(axis=2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, counts / n, 0.0)


def predict_proba(trees: TreeBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K)`` class fractions of the leaf each real record ``(n, d)`` falls in.

    Records walk down their tree in D steps, each one gather of the slot's feature, threshold
    and record value per (tree, record); a slot that does not split keeps its records.
    """
    x = np.asarray(X_real, dtype=np.float32).astype(np.float64)
    B, S = trees.feature.shape
    n = x.shape[0]
    xt = np.ascontiguousarray(x.T).ravel()  # (d · n,)
    column = (np.maximum(trees.feature, 0) * n).ravel()
    threshold = trees.threshold.ravel()
    stays = (trees.feature < 0).ravel()
    heavy = trees.left_heavy.ravel()
    missing = bool(np.isnan(x).any())
    i = np.zeros((B, n), dtype=np.intp)
    base = (np.arange(B) * S)[:, None]
    cols = np.arange(n)[None, :]
    for _ in range(trees.depth):
        at = base + i
        v = xt[column[at] + cols]
        right = v > threshold[at]
        if missing:
            right = np.where(np.isnan(v), ~heavy[at], right)
        i = np.where(stays[at], i, 2 * i + 1 + right)
    return trees.value[np.arange(B)[:, None], i]
