"""Batched CART on sets of at most 64 rows: each node's rows as one 64-bit mask.

Grows the same trees as :func:`.batched_tree.fit` (scikit-learn's
``DecisionTreeClassifier(max_depth=D, random_state=R)``, node for node, with the same split
rule, scores, tie-breaking and leaf values; see that module) for sets of ``m ≤ 64`` rows,
several times faster, because a node never moves its rows:

* every set is sorted once per feature; ``prefix[b, f, i]`` is the mask of the rows at sorted
  positions ``≤ i`` and ``tied[b, f, i]`` the mask of the later rows whose value is within
  ``1e-7`` of position i's (a split after i would separate them);
* a node is the mask ``N`` of its rows: the split after position i has
  ``popcount(prefix & N)`` rows and ``popcount(prefix & N & y1)`` rows of class 1 on the left,
  and is a candidate when ``tied & N`` is empty and both sides are non-empty; the children are
  ``prefix & N`` and the rest of ``N``. Positions of rows outside the node repeat the split
  before them, so the first best position is always a member's;
* the features of a node are gathered in scikit-learn's visit order (its splitter's draw for
  that node), so one ``argmax`` over (feature, position) finds the split it keeps;
* nodes are grown in *waves* rather than one heap slot at a time: a node's draw depends on how
  many nodes were split before it in depth-first order, which is known as soon as the parents
  of those nodes are split (:func:`waves`).

A feature with no candidate split in a node that is split (in particular a constant one) flags
the tree in ``needs_reference``, as :mod:`.batched_tree` does.
"""

from __future__ import annotations

import functools

import numpy as np

from .batched_tree import (
    _FEATURE_THRESHOLD,
    TreeBatch,
    _gini_terms,
    _score_table,
    preorder_slots,
    visit_ranks,
)

MAX_ROWS = 64


@functools.lru_cache(maxsize=16)
def waves(depth: int) -> tuple[tuple[int, ...], ...]:
    """Internal heap slots of a depth-``depth`` tree grouped into steps that can be grown
    together: a slot joins the step after the last one that split the parent of any slot up
    to it in depth-first order (those splits fix which earlier nodes exist, hence its draw)."""
    done: dict[int, int] = {}
    out: list[list[int]] = []
    latest = -1
    for s in preorder_slots(depth):
        if s:
            latest = max(latest, done[(s - 1) // 2])
        done[s] = latest + 1
        if latest + 1 == len(out):
            out.append([])
        out[latest + 1].append(s)
    return tuple(tuple(w) for w in out)


@functools.lru_cache(maxsize=64)
def _visit_orders(n_features: int, n_calls: int, random_state: int) -> np.ndarray:
    """``(n_calls, d)`` features in the order the k-th ``node_split`` call visits them."""
    return np.argsort(visit_ranks(n_features, n_calls, random_state), axis=1)


def _sort(XT: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray]:
    """``(bits, sorted values)`` of ``XT (B, d, m)`` along the last axis: the row at each
    sorted position as a bit of ``dtype``, and the values (float32).

    One float64 sort: a float32 value is exact in float64 with 29 low mantissa bits zero, and
    those bits hold the row. Rows with equal values may come in any order (a split never
    separates them, so the trees do not depend on it)."""
    key = XT.astype(np.float64)
    bits = key.view(np.uint64)
    bits |= np.arange(XT.shape[2], dtype=np.uint64)
    key.sort(axis=2)
    row: np.ndarray = (bits & np.uint64(63)).astype(dtype)
    bits &= ~np.uint64(63)
    return np.left_shift(dtype(1), row, out=row), key.astype(np.float32)


def _masks(XT: np.ndarray, dtype: type) -> tuple[np.ndarray, np.ndarray, np.ndarray | None,
                                                 np.ndarray]:
    """``(bits, prefix, tied, sorted values)`` of ``XT (B, d, m)``, each ``(B, d, m)``: the
    row at each sorted position as a bit, the prefix masks and the tie masks (module doc;
    ``None`` when no two values of a feature are within the threshold)."""
    bits, xs = _sort(XT, dtype)
    prefix: np.ndarray = np.cumsum(bits, axis=2, dtype=dtype)  # distinct bits: the sum is the union
    reach = xs + _FEATURE_THRESHOLD
    tied = None
    for k in range(1, XT.shape[2]):  # the rows k positions on within the threshold
        close = xs[:, :, k:] <= reach[:, :, :-k]
        if not close.any():
            break
        if tied is None:
            tied = np.zeros_like(prefix)
        tied[:, :, :-k] |= np.where(close, bits[:, :, k:], dtype(0))
    return bits, prefix, tied, xs


def _splittable(node: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Whether scikit-learn calls its splitter on each node mask: ≥ 2 rows and Gini > ε,
    that is rows of two classes (with at most 64 rows an impure node's Gini is above 0.03,
    and a pure node's is exactly 0)."""
    return ((node[..., None] & ~classes) != 0).all(axis=-1)


@functools.lru_cache(maxsize=8192)
def _kind_ranks(m: int, kind: int) -> np.ndarray:
    """``((m+1)², )`` ranks (:func:`_ranks`) of the two-class Gini proxy improvement of a
    split of a node of ``kind = n·(m+1) + count of class 1``, indexed by the left child's
    ``rows·(m+1) + count of class 1``."""
    m1 = m + 1
    table = _score_table(m)
    keys = np.arange(m1 * m1)
    proxy = -table[np.maximum(kind - keys, 0)] - table[keys]
    proxy[(keys < m1) | (keys // m1 >= kind // m1)] = -np.inf
    return _ranks(proxy)


def _ranks(proxy: np.ndarray) -> np.ndarray:
    """Dense ranks of ``proxy`` (same shape; ``-inf`` ranks 0), in the smallest integer type
    that holds them."""
    values, rank = np.unique(np.concatenate([[-np.inf], proxy.ravel()]), return_inverse=True)
    return rank[1:].astype(np.int16 if len(values) <= 2**15 else np.intp).reshape(proxy.shape)


class _Grower:
    """State of B trees grown wave by wave (see :func:`waves`)."""

    def __init__(self, X: np.ndarray, labels: np.ndarray, n_classes: int, max_depth: int,
                 random_state: int) -> None:
        XT = np.ascontiguousarray(np.asarray(X, dtype=np.float32).transpose(0, 2, 1))
        B, d, m = XT.shape
        if m > MAX_ROWS:
            raise ValueError(f"at most {MAX_ROWS} rows per set, got {m}")
        self.m, self.d, self.depth = m, d, max_depth
        S = 2**max_depth - 1
        dtype = np.uint32 if m <= 32 else np.uint64
        self.bits, self.prefix, self.tied, self.xs = _masks(XT, dtype)
        self.has_ties = np.zeros(1, dtype=bool) if self.tied is None \
            else np.asarray(self.tied.any(axis=2))
        row_bits = np.left_shift(dtype(1), np.arange(m, dtype=dtype))
        labels = np.asarray(labels, dtype=np.int64)
        self.classes = np.array([np.bitwise_or.reduce(row_bits[labels == c])
                                 for c in range(n_classes)], dtype=dtype)
        self.table = _score_table(m) if n_classes == 2 else None
        self.orders = _visit_orders(d, S, int(random_state))
        self.pos = np.empty(S, dtype=np.int64)  # preorder position of each slot
        self.pos[list(preorder_slots(max_depth))] = np.arange(S)
        self.node = np.zeros((B, 2 * S + 1), dtype=dtype)  # row mask of every heap node
        self.node[:, 0] = np.bitwise_or.reduce(row_bits)
        self.split_called = np.zeros((B, S), dtype=bool)  # by preorder position
        self.split_called[:, 0] = _splittable(self.node[:, 0], self.classes)
        self.feature = np.full((B, S), -1, dtype=np.int64)
        self.threshold = np.zeros((B, S))
        self.left_heavy = np.zeros((B, S), dtype=bool)
        self.needs_reference = np.zeros(B, dtype=bool)

    def grow(self) -> TreeBatch:
        """Split every wave's nodes, then take the class fractions of every node."""
        for wave in waves(self.depth):
            cols = self.pos[list(wave)]
            b, j = np.nonzero(self.split_called[:, cols])
            if len(b):
                calls = np.cumsum(self.split_called, axis=1)[b, cols[j]] - 1
                self._split(b, np.asarray(wave)[j], calls)
        counts = np.bitwise_count(self.node[..., None] & self.classes).astype(np.float64)
        n = counts.sum(axis=2, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            value = np.where(n > 0, counts / n, 0.0)
        return TreeBatch(self.feature, self.threshold, self.left_heavy, value,
                         self.needs_reference)

    def _split(self, b: np.ndarray, s: np.ndarray, calls: np.ndarray) -> None:
        """Best split of node ``s`` of each tree ``b`` (its ``calls``-th splitter call)."""
        m = self.m
        N = self.node[b, s]
        order = self.orders[calls]  # (A, d) features in visit order
        score = self._score((b[:, None], order), N)  # (A, d, m), larger is better
        self.needs_reference[b[(score.max(axis=2) == 0).any(axis=1)]] = True
        score = score.reshape(len(b), -1)
        best = score.argmax(axis=1)
        found = score[np.arange(len(b)), best] > 0
        b, s, N, order, best = b[found], s[found], N[found], order[found], best[found]
        r = np.arange(len(b))
        f, p = order[r, best // m], best % m
        members = (self.bits[b, f] & N[:, None]) != 0  # (A, m) by sorted position
        q = np.argmax(members & (np.arange(m)[None, :] > p[:, None]), axis=1)
        xs = self.xs[b, f]
        self.threshold[b, s] = xs[r, p].astype(np.float64) / 2.0 \
            + xs[r, q].astype(np.float64) / 2.0
        self.feature[b, s] = f
        left = self.prefix[b, f, p] & N
        n_left = np.bitwise_count(left).astype(np.int64)
        self.left_heavy[b, s] = n_left > np.bitwise_count(N).astype(np.int64) - n_left
        self.node[b, 2 * s + 1], self.node[b, 2 * s + 2] = left, N ^ left
        inner = 2 * s + 2 < len(self.pos)
        for child in (2 * s[inner] + 1, 2 * s[inner] + 2):
            self.split_called[b[inner], self.pos[child]] = _splittable(
                self.node[b[inner], child], self.classes)

    def _score(self, at: tuple[np.ndarray, np.ndarray], N: np.ndarray) -> np.ndarray:
        """The splits after every sorted position of the features ``at`` of nodes ``N``
        ranked by scikit-learn's Gini proxy improvement: equal proxies get equal ranks, a
        larger proxy a larger rank, and no split (``-inf``) rank 0."""
        inside = self.prefix[at]  # (A, d, m): the left child's rows after each position
        inside &= N[:, None, None]
        n = np.bitwise_count(N).astype(np.intp)
        tied = self._tied(at, N)
        if self.table is None:
            return _ranks(self._proxy_gini(inside, N, n, tied))
        # two classes: a table of ranks per node kind (rows, rows of class 1) indexed by the
        # left child's (rows, rows of class 1)
        m1 = self.m + 1
        key = np.empty(inside.shape, dtype=np.intp)
        np.bitwise_count(inside, out=key)
        key *= m1
        inside &= self.classes[1]
        key += np.bitwise_count(inside)
        if tied is not None:
            np.putmask(key, tied, 0)  # no rows on the left: no split
        kinds = (n * m1 + np.bitwise_count(N & self.classes[1])).tolist()
        first = {k: i for i, k in enumerate(dict.fromkeys(kinds))}
        ranks = np.concatenate([_kind_ranks(self.m, k) for k in first])
        key += (np.array([first[k] for k in kinds]) * (m1 * m1))[:, None, None]
        return np.take(ranks, key)

    def _tied(self, at: tuple[np.ndarray, np.ndarray], N: np.ndarray) -> np.ndarray | None:
        """Where a split would separate values within the threshold (``None``: nowhere)."""
        if self.tied is None or not self.has_ties[at].any():
            return None
        tied = self.tied[at]
        tied &= N[:, None, None]
        return tied != 0

    def _proxy_gini(self, inside: np.ndarray, N: np.ndarray, n: np.ndarray,
                    tied: np.ndarray | None) -> np.ndarray:
        """Gini proxy improvement of the splits of :meth:`_score` (``-inf``: none), for any
        number of classes."""
        nl = np.bitwise_count(inside).astype(np.float64)
        cl = [np.bitwise_count(inside & c).astype(np.float64) for c in self.classes]
        total = [np.bitwise_count(N & c).astype(np.float64)[:, None, None] for c in self.classes]
        nr = n[:, None, None] - nl
        cr = [t - c for t, c in zip(total, cl)]
        with np.errstate(divide="ignore", invalid="ignore"):
            proxy = -_gini_terms(cr, nr)[1] - _gini_terms(cl, nl)[1]
        invalid = (nl < 1) | (nr < 1)
        if tied is not None:
            invalid |= tied
        proxy[invalid] = -np.inf
        return proxy


def fit(X: np.ndarray, labels: np.ndarray, n_classes: int, max_depth: int = 4,
        random_state: int = 0) -> TreeBatch:
    """Grow one tree per set of ``X (B, m, d)`` (finite values, ``m ≤ 64``) on
    ``labels (m,)``: the trees of :func:`.batched_tree.fit`."""
    return _Grower(X, labels, n_classes, max_depth, random_state).grow()
