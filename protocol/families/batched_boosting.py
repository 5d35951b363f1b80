"""Batched gradient boosting: B boosted ensembles of depth-limited regression trees, in numpy.

Reproduces ``GradientBoostingClassifier(n_estimators=T, max_depth=D, learning_rate=lr,
random_state=R)`` (log loss, ``subsample=1``, ``max_features=None``, prior init, no sample
weights) on each of B training sets ``(m, d)`` sharing one label vector, bit for bit:

* stage t fits one regression tree on the negative gradient (``K`` trees, one per class, on
  softmax residuals for K > 2 classes), computed for all sets by scikit-learn's own loss
  (:func:`_negative_gradient`; numpy's SIMD ``exp`` is not the C library's on every CPU);
  tree ``(t, k)`` takes its splitter seed from the ensemble's shared ``RandomState(R)``
  stream, in that order (:func:`tree_ranks`);
* each tree is scikit-learn's squared-error CART: the split maximising the proxy
  ``sL²/nL + sR²/nR``, with ``sL`` summed one row at a time in the order of the feature and
  ``sR = total - sL``, the node's total summed in the order of the splitter's sample array
  (which this module replays: sorted by the last feature visited, then partitioned by
  swapping, :func:`_partition`), so equal partitions found by two features tie or differ
  exactly as they do in scikit-learn; ties go to the feature visited first;
* leaves get one Newton step ``mean(residual) / mean(p (1 - p))`` (times ``(K-1)/K`` for
  K > 2; 0 where the denominator is below 1e-150), the means summed as numpy sums them
  (:func:`_numpy_mean`), and predictions add ``lr · leaf`` stage by stage.

The splitter's feature order is replayed only for sets without ties: a set in which two
rows of some feature lie within 1e-7 (float32) is flagged in ``needs_reference`` (a constant
feature in a node changes the draws, and tied values are ordered by an unstable sort) and
must be fitted by scikit-learn itself.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .batched_tree import (
    _EPSILON,
    _FEATURE_THRESHOLD,
    _RAND_R_MAX,
    preorder_slots,
    ranks_from_state,
)


@dataclass
class BoostedBatch:
    """B fitted ensembles; trees in heap layout (children of slot i at 2i + 1, 2i + 2).

    Attributes
    ----------
    init:
        ``(K',)`` initial raw prediction (K' = 1 for two classes, else the class count).
    feature, threshold:
        ``(B, T, K', 2^D - 1)`` split feature (-1: no split) and float64 threshold.
    value:
        ``(B, T, K', 2^(D+1) - 1)`` leaf values (Newton steps, before the learning rate).
    learning_rate:
        Shrinkage of every tree.
    needs_reference:
        ``(B,)`` sets this kernel cannot reproduce (ties); refit them with scikit-learn.
    """

    init: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    learning_rate: float
    needs_reference: np.ndarray


@functools.lru_cache(maxsize=32)
def tree_ranks(n_features: int, n_trees: int, n_calls: int, random_state: int) -> np.ndarray:
    """``(n_trees, n_calls, d)`` visit ranks of each tree's splitter calls: tree j's seed is
    the j-th ``randint(0, 2**31 - 1)`` of ``RandomState(random_state)``."""
    rng = np.random.RandomState(random_state)
    return np.stack([ranks_from_state(n_features, n_calls, int(rng.randint(0, _RAND_R_MAX)))
                     for _ in range(n_trees)])


def has_ties(X32: np.ndarray) -> np.ndarray:
    """``(B,)`` whether some feature of a set ``(B, m, d)`` has two values within 1e-7."""
    xs = np.sort(X32, axis=1)
    return np.asarray((xs[:, 1:] <= xs[:, :-1] + _FEATURE_THRESHOLD).any(axis=(1, 2)))


def _numpy_mean(vals: np.ndarray, count: np.ndarray) -> np.ndarray:
    """``np.mean`` of the first ``count[g]`` entries of each row of ``vals (G, M)`` (zero
    padded), in numpy's summation order: one by one from 0 below 8 entries, else 8
    interleaved partial sums combined as a tree, then the remainder one by one (numpy's
    pairwise sum; exact up to 128 entries)."""
    G, M = vals.shape
    n = np.asarray(count)
    padded = np.zeros((G, M + (-M) % 8))
    padded[:, :M] = vals
    pos = np.arange(padded.shape[1])[None, :]
    small = np.cumsum(padded, axis=1)[np.arange(G), np.maximum(n - 1, 0)]
    full = (n - n % 8)[:, None]
    r = np.cumsum(np.where(pos < full, padded, 0.0).reshape(G, -1, 8), axis=1)[:, -1, :]
    res = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    tail = np.where((pos >= full) & (pos < n[:, None]), padded, 0.0)
    big = np.cumsum(np.concatenate([res[:, None], tail], axis=1), axis=1)[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= 8, big, small) / n


def _range_sum(vals: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sum of ``vals[g, lo:hi]`` added one entry at a time, left to right, from 0."""
    pos = np.arange(vals.shape[1])[None, :]
    inside = (pos >= lo[:, None]) & (pos < hi[:, None])
    return np.cumsum(np.where(inside, vals, 0.0), axis=1)[:, -1]


def _reverse_sub(total: np.ndarray, vals: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> np.ndarray:
    """``total - vals[g, hi-1] - ... - vals[g, lo]`` one entry at a time (the criterion's
    update from the right end)."""
    pos = np.arange(vals.shape[1])[None, :]
    inside = (pos >= lo[:, None]) & (pos < hi[:, None])
    steps = np.where(inside, -vals, 0.0)[:, ::-1]
    return np.cumsum(np.concatenate([total[:, None], steps], axis=1), axis=1)[:, -1]


def _partition(A: np.ndarray, go: np.ndarray, st: np.ndarray, en: np.ndarray) -> np.ndarray:
    """Replay scikit-learn's in-place partition (``partition_samples_final``) of the sample
    positions ``[st, en)`` of each row of ``A (G, m)``, whose entries go left where ``go``.

    The partition examines entries from the front while they go left and from the back
    while they go right. With right-goers at ascending positions ``p_1, p_2, ...`` and
    left-goers at descending positions ``q_1, q_2, ...`` (``q_0 = en``), the first J pairs
    with ``p_j < q_j`` swap: ``q_j`` moves to ``p_j`` and ``p_j`` to ``q_{j-1} - 1`` (as does
    ``p_{J+1}`` if it lies before ``q_J``); every other right-goer behind moves one place
    down and every other left-goer stays."""
    G, m = A.shape
    pos = np.broadcast_to(np.arange(m)[None, :], (G, m))
    rows = np.broadcast_to(np.arange(G)[:, None], (G, m))
    inr = (pos >= st[:, None]) & (pos < en[:, None])
    right, left = inr & ~go, inr & go
    c_r, c_l = np.cumsum(right, axis=1), np.cumsum(left, axis=1)
    jr = c_r - 1  # ascending index among right-goers
    jl = c_l[:, -1:] - c_l  # descending index among left-goers
    P = np.full((G, m + 1), m, dtype=np.int64)
    P[rows[right], (st[:, None] + jr)[right]] = pos[right]
    Q = np.full((G, m + 2), -1, dtype=np.int64)  # Q[:, st + j] = q_(j+1); Q[:, st - 1] = en
    Q[:, 1:][rows[left], (st[:, None] + jl)[left]] = pos[left]
    Q[np.arange(G), st] = en
    k = pos - st[:, None]
    J = ((k < np.minimum(c_r[:, -1:], c_l[:, -1:])) & (np.take_along_axis(P, np.minimum(
        st[:, None] + k, m), axis=1) < np.take_along_axis(Q, st[:, None] + k + 1, axis=1))
         & inr).sum(axis=1)[:, None]
    q_prev = np.take_along_axis(Q, np.clip(st[:, None] + jr, 0, m + 1), axis=1)  # q_(j-1)
    front = right & ((jr < J) | ((jr == J) & (pos < q_prev)))
    dest = np.where(front, q_prev - 1, np.where(right, pos - 1, pos))
    swapped = left & (jl < J)
    dest = np.where(swapped, np.take_along_axis(P, np.clip(st[:, None] + jl, 0, m), axis=1),
                    dest)
    out = np.empty_like(A)
    out[rows, dest] = A
    return out


@dataclass
class _Sets:
    """Per-set data fixed for the whole fit: float32 values and per-feature sort orders."""

    XT: np.ndarray  # (B, d, m) float32
    order: np.ndarray  # (B, d, m) rows by ascending value, per feature
    flat: np.ndarray  # (B, d, m) order + b·m: flat indices into (B, m) arrays
    grank: np.ndarray  # (B, d, m) position of each row in its feature's order

    @classmethod
    def of(cls, X32: np.ndarray) -> _Sets:
        B, m, d = X32.shape
        XT = np.ascontiguousarray(X32.transpose(0, 2, 1))
        order = np.argsort(XT, axis=2, kind="stable")
        grank = np.empty_like(order)
        np.put_along_axis(grank, order, np.broadcast_to(np.arange(m), order.shape), axis=2)
        return cls(XT, order, order + (np.arange(B) * m)[:, None, None], grank)


def _best_split(sets: _Sets, bi: np.ndarray, member: np.ndarray, r: np.ndarray,
                n: np.ndarray, total: np.ndarray, rank: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best split of one node in the sets ``bi``: ``(found, feature, threshold, n_left)``.

    ``member (B·m,)`` flags the node's rows; ``r (B·m,)`` the residuals; ``rank (b, d)`` the
    splitter's visit order. Left sums accumulate one row at a time in each feature's order."""
    m = sets.XT.shape[2]
    flat = sets.flat[bi]
    mem = member[flat]  # (b, d, m) the node's rows, in each feature's order
    s_left = np.cumsum(np.where(mem, r[flat], 0.0), axis=2)
    n_left = np.cumsum(mem, axis=2)
    valid = mem & (n_left < n[:, None, None])
    nl = n_left.astype(np.float64)
    s_right = total[:, None, None] - s_left
    with np.errstate(divide="ignore", invalid="ignore"):
        proxy = s_left * s_left / nl + s_right * s_right / (n[:, None, None] - nl)
    proxy = np.where(valid, proxy, -np.inf)
    at = proxy.argmax(axis=2)  # first best position of each feature
    best = np.take_along_axis(proxy, at[:, :, None], axis=2)[:, :, 0]
    top = best.max(axis=1, keepdims=True)
    f = np.where(best == top, rank, rank.shape[1] + 1).argmin(axis=1)
    g = np.arange(len(bi))
    p = at[g, f]
    nxt = (mem[g, f] & (np.arange(m)[None, :] > p[:, None])).argmax(axis=1)
    x = sets.XT[bi, f].astype(np.float64)  # (b, m) by row
    rows = sets.order[bi, f]
    thr = x[g, rows[g, p]] / 2.0 + x[g, rows[g, nxt]] / 2.0
    return np.isfinite(top[:, 0]), f, thr, n_left[g, f, p]


def _children(samples: np.ndarray, r: np.ndarray, st: np.ndarray, en: np.ndarray,
              n_left: np.ndarray, total: np.ndarray, sq_total: np.ndarray,
              impurity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Children impurities and improvement of a split (scikit-learn's ``children_impurity``
    after ``update(pos)`` from the node's start, or from its end when that is shorter)."""
    n = (en - st).astype(np.float64)
    mid = st + n_left
    vals = np.take_along_axis(r, samples, axis=1)
    sq_left = _range_sum(vals * vals, st, mid)
    forward = n_left <= en - mid
    s_left = np.where(forward, _range_sum(vals, st, mid), _reverse_sub(total, vals, mid, en))
    s_right = total - s_left
    nl, nr = n_left.astype(np.float64), (en - mid).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):  # sets without a split: unused
        imp_l = sq_left / nl - (s_left / nl) ** 2
        imp_r = (sq_total - sq_left) / nr - (s_right / nr) ** 2
        improvement = (n / r.shape[1]) * (impurity - (nr / n * imp_r) - (nl / n * imp_l))
    return imp_l, imp_r, improvement


def _grow_tree(sets: _Sets, r: np.ndarray, ranks: np.ndarray,
               depth: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One squared-error tree per set on residuals ``r (B, m)``, grown depth first as
    scikit-learn grows it: ``(feature (B, S), threshold (B, S), leaf slot of each row)``."""
    B, d, m = sets.XT.shape
    S, slots = 2**depth - 1, 2 ** (depth + 1) - 1
    samples = np.tile(np.arange(m), (B, 1))  # the splitter's sample array
    node = np.zeros((B, m), dtype=np.int64)
    st, en = np.zeros((B, slots), dtype=np.int64), np.full((B, slots), m, dtype=np.int64)
    total, sq = np.cumsum(r, axis=1)[:, -1], np.cumsum(r * r, axis=1)[:, -1]
    imp = np.zeros((B, slots))
    imp[:, 0] = sq / m - (total / m) ** 2
    calls = np.zeros(B, dtype=np.int64)
    feature, threshold = np.full((B, S), -1, dtype=np.int64), np.zeros((B, S))
    pos = np.arange(m)[None, :]
    for s in preorder_slots(depth):
        bi = np.flatnonzero((en[:, s] - st[:, s] >= 2) & (imp[:, s] > _EPSILON))
        if not len(bi):
            continue
        lo, hi, smp = st[bi, s], en[bi, s], samples[bi]
        vals = np.take_along_axis(r[bi], smp, axis=1)
        total, sq = _range_sum(vals, lo, hi), _range_sum(vals * vals, lo, hi)
        rank = ranks[calls[bi]]
        calls[bi] += 1
        found, f, thr, nl = _best_split(sets, bi, (node == s).ravel(), r.ravel(), hi - lo,
                                        total, rank)
        # the splitter leaves the rows sorted by the feature it visited last, then partitions
        g = np.arange(len(bi))[:, None]
        key = sets.grank[bi, rank.argmax(axis=1)][g, smp]
        inr = (pos >= lo[:, None]) & (pos < hi[:, None])
        A = np.take_along_axis(smp, np.argsort(np.where(inr, lo[:, None] * m + key, pos * m),
                                               axis=1), axis=1)
        go = sets.XT[bi, f][g, A].astype(np.float64) <= thr[:, None]
        smp = np.where(found[:, None], _partition(A, go, lo, hi), smp)
        samples[bi] = smp
        imp_l, imp_r, gain = _children(smp, r[bi], lo, hi, nl, total, sq, imp[bi, s])
        keep = found & ~(gain + _EPSILON < 0.0)
        bi, f, thr, nl, lo, hi = (a[keep] for a in (bi, f, thr, nl, lo, hi))
        feature[bi, s], threshold[bi, s] = f, thr
        left, right = 2 * s + 1, 2 * s + 2
        st[bi, left], en[bi, left], st[bi, right], en[bi, right] = lo, lo + nl, lo + nl, hi
        imp[bi, left], imp[bi, right] = imp_l[keep], imp_r[keep]
        go_row = sets.XT[bi, f].astype(np.float64) <= thr[:, None]
        node[bi] = np.where(node[bi] == s, np.where(go_row, left, right), node[bi])
    return feature, threshold, node


def _leaf_values(leaf: np.ndarray, neg_g: np.ndarray, y: np.ndarray, n_classes: int,
                 slots: int) -> np.ndarray:
    """``(B, slots)`` Newton step of every leaf (scikit-learn's ``_update_terminal_regions``
    for the log loss): ``mean(neg_g) / mean(p (1 - p))`` over the leaf's rows in index
    order, the numerator times ``(K-1)/K`` for K > 2 classes, 0 below 1e-150."""
    B, m = leaf.shape
    hit = leaf[:, :, None] == np.arange(slots)[None, None, :]  # (B, m, slots)
    within = np.take_along_axis(np.cumsum(hit, axis=1), leaf[:, :, None], axis=2)[:, :, 0] - 1
    count = hit.sum(axis=1).ravel()
    prob = y[None, :] - neg_g
    idx = (np.arange(B)[:, None] * slots + leaf, within)
    num, den = np.zeros((B * slots, m)), np.zeros((B * slots, m))
    num[idx], den[idx] = neg_g, prob * (1 - prob)
    numerator, denominator = _numpy_mean(num, count), _numpy_mean(den, count)
    if n_classes > 2:
        numerator = numerator * ((n_classes - 1) / n_classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(np.abs(denominator) < 1e-150, 0.0, numerator / denominator)
    return np.where(count > 0, value, 0.0).reshape(B, slots)


def _negative_gradient(raw: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """``(B, m, K')`` negative gradient of the half binomial / multinomial loss, computed by
    scikit-learn's own loss (``_loss.pyx``) on the ``B·m`` rows at once.

    Not with ``np.exp``: numpy's SIMD exp (AVX-512 builds of its loops, chosen at run time
    by the CPU) can differ in the last bit from the C library's ``exp`` that scikit-learn's
    Cython loss calls, and one ulp in a residual can change a split."""
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss

    B, m, K1 = raw.shape
    y = np.tile(labels.astype(np.float64), B)
    if n_classes == 2:
        grad = HalfBinomialLoss().gradient(
            y_true=y, raw_prediction=np.ascontiguousarray(raw[:, :, 0]).reshape(B * m))
    else:
        grad = HalfMultinomialLoss(n_classes=n_classes).gradient(
            y_true=y, raw_prediction=np.ascontiguousarray(raw).reshape(B * m, K1))
    return -np.asarray(grad).reshape(B, m, K1)


def fit(X: np.ndarray, labels: np.ndarray, n_classes: int, init: np.ndarray,
        n_estimators: int = 100, learning_rate: float = 0.1, max_depth: int = 3,
        random_state: int = 0) -> BoostedBatch:
    """Boost one ensemble per set of ``X (B, m, d)`` (finite values, m ≤ 128) on
    ``labels (m,)`` in ``[0, n_classes)``, every class present; ``init (K',)`` is the
    initial raw prediction (log-odds or symmetric log of the class prior)."""
    X32 = np.asarray(X, dtype=np.float32)
    B, m, d = X32.shape
    labels = np.asarray(labels, dtype=np.int64)
    K1 = 1 if n_classes == 2 else n_classes
    S, slots = 2**max_depth - 1, 2 ** (max_depth + 1) - 1
    sets = _Sets.of(X32)
    ranks = tree_ranks(d, n_estimators * K1, S, int(random_state))
    raw = np.tile(np.asarray(init, dtype=np.float64).reshape(1, 1, K1), (B, m, 1))
    feature = np.full((B, n_estimators, K1, S), -1, dtype=np.int64)
    threshold = np.zeros((B, n_estimators, K1, S))
    value = np.zeros((B, n_estimators, K1, slots))
    for t in range(n_estimators):
        neg_g = _negative_gradient(raw, labels, n_classes)
        for k in range(K1):
            y = (labels == (1 if K1 == 1 else k)).astype(np.float64)
            r = np.ascontiguousarray(neg_g[:, :, k])
            feature[:, t, k], threshold[:, t, k], leaf = _grow_tree(sets, r, ranks[t * K1 + k],
                                                                    max_depth)
            value[:, t, k] = _leaf_values(leaf, r, y, n_classes, slots)
            raw[:, :, k] += learning_rate * np.take_along_axis(value[:, t, k], leaf, axis=1)
    return BoostedBatch(np.asarray(init, dtype=np.float64).reshape(K1), feature, threshold,
                        value, float(learning_rate), has_ties(X32))


def predict_raw(batch: BoostedBatch, X_real: np.ndarray) -> np.ndarray:
    """``(B, n, K')`` raw predictions on real records ``(n, d)``: the initial value plus
    ``learning_rate · leaf`` of every tree, added stage by stage."""
    x = np.asarray(X_real, dtype=np.float32)
    B, T, K1, S = batch.feature.shape
    n = x.shape[0]
    feature = batch.feature.reshape(B * T * K1, S)
    threshold = batch.threshold.reshape(B * T * K1, S)
    i = np.zeros((B * T * K1, n), dtype=np.int64)
    rows = np.arange(B * T * K1)[:, None]
    for _ in range(int(np.log2(S + 1))):
        slot = np.minimum(i, S - 1)
        f = feature[rows, slot]
        split = (i < S) & (f >= 0)
        xv = x[np.arange(n)[None, :], np.where(split, f, 0)].astype(np.float64)
        i = np.where(split, np.where(xv <= threshold[rows, slot], 2 * i + 1, 2 * i + 2), i)
    leaf = batch.value.reshape(B * T * K1, -1)[rows, i].reshape(B, T, K1, n)
    steps = np.concatenate([np.broadcast_to(batch.init[None, None, :, None], (B, 1, K1, n)),
                            batch.learning_rate * leaf], axis=1)
    return np.cumsum(steps, axis=1)[:, -1].transpose(0, 2, 1)
