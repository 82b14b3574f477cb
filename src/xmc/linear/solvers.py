"""Dual coordinate descent for L2-regularised linear classifiers (LIBLINEAR's algorithms).

- squared hinge and hinge: Hsieh et al., ICML 2008, with LIBLINEAR's shrinking heuristic;
- logistic: Yu, Huang & Lin, MLJ 2011 (a Newton inner solve per coordinate).

A *block* is the training problem of one parent node: the instances routed to it (CSR rows,
features re-indexed to the block) and, for each child, which of those rows are positive. The
children of a block are trained in groups that share one pass over the rows (see
:func:`_svc_group`); the functions release the GIL so that groups run on parallel threads, and each
group has its own deterministic random stream, so results do not depend on thread scheduling.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np
import scipy.sparse as sp
from numba.typed import List

from xmc.utils.rng import seed_state, shuffle

LOSSES = ("squared_hinge", "hinge", "logistic")


@nb.njit(cache=True, inline="always", fastmath=True)
def _dot(w, indptr, indices, data, i, bias_col, bias):
    acc = w[bias_col] * bias
    for k in range(indptr[i], indptr[i + 1]):
        acc += w[indices[k]] * data[k]
    return acc


@nb.njit(cache=True, inline="always", fastmath=True)
def _axpy(w, a, indptr, indices, data, i, bias_col, bias):
    for k in range(indptr[i], indptr[i + 1]):
        w[indices[k]] += a * data[k]
    w[bias_col] += a * bias


@nb.njit(cache=True, nogil=True, fastmath=True)
def _svc_group(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, l1, state, W):
    """Train ``G`` binary SVMs on the same rows at once; ``W`` is ``(n_features + 1, G)``.

    Each child runs LIBLINEAR's dual coordinate descent with shrinking, unchanged; only the row
    order of a pass is shared. Visiting a row computes every child's margin with one pass over
    the row's nonzeros (contiguous runs of ``G`` weights) instead of ``G`` scattered gathers.
    Returns each child's number of passes.
    """
    n, G = y.shape
    F = W.shape[0] - 1
    diag = np.array([0.0 if l1 else 0.5 / Cn, 0.0 if l1 else 0.5 / Cp])
    upper = np.array([Cn if l1 else np.inf, Cp if l1 else np.inf])
    alpha = np.zeros((n, G))
    shrunk = np.zeros((n, G), np.bool_)
    live = np.full(n, G, np.int64)  # children for which a row is neither shrunk nor finished
    n_shrunk = np.zeros(G, np.int64)
    done = np.zeros(G, np.bool_)
    iters = np.zeros(G, np.int64)
    pg_max_old, pg_min_old = np.full(G, np.inf), np.full(G, -np.inf)
    pg_max, pg_min = np.empty(G), np.empty(G)
    margin, delta = np.empty(G, W.dtype), np.empty(G, W.dtype)
    index = np.arange(n)
    w0 = W[:, 0]  # the single child's weights, for the one-child fast path
    n_done = 0
    it = 0
    while it < max_iter and n_done < G:
        pg_max[:] = -np.inf
        pg_min[:] = np.inf
        state = shuffle(index, n, state)
        for s in range(n):
            i = index[s]
            if live[i] == 0:
                continue
            if G == 1:  # a register accumulator: the array one below round-trips through memory
                margin[0] = _dot(w0, indptr, indices, data, i, F, bias)
            else:
                for c in range(G):
                    margin[c] = bias * W[F, c]
                for k in range(indptr[i], indptr[i + 1]):
                    f, v = indices[k], data[k]
                    for c in range(G):
                        margin[c] += v * W[f, c]
            changed = False
            for c in range(G):
                delta[c] = 0.0
                if done[c] or shrunk[i, c]:
                    continue
                pos = 1 if y[i, c] > 0 else 0
                a, d, U = alpha[i, c], diag[pos], upper[pos]
                grad = y[i, c] * margin[c] - 1.0 + a * d
                PG = 0.0
                if a == 0.0:
                    if grad > pg_max_old[c]:
                        shrunk[i, c] = True
                        live[i] -= 1
                        n_shrunk[c] += 1
                        continue
                    elif grad < 0.0:
                        PG = grad
                elif a == U:
                    if grad < pg_min_old[c]:
                        shrunk[i, c] = True
                        live[i] -= 1
                        n_shrunk[c] += 1
                        continue
                    elif grad > 0.0:
                        PG = grad
                else:
                    PG = grad
                pg_max[c] = max(pg_max[c], PG)
                pg_min[c] = min(pg_min[c], PG)
                if abs(PG) > 1e-12:
                    new = min(max(a - grad / (xsq[i] + d), 0.0), U)
                    alpha[i, c] = new
                    delta[c] = (new - a) * y[i, c]
                    changed = True
            if changed and G == 1:
                _axpy(w0, delta[0], indptr, indices, data, i, F, bias)
            elif changed:
                for k in range(indptr[i], indptr[i + 1]):
                    f, v = indices[k], data[k]
                    for c in range(G):
                        W[f, c] += v * delta[c]
                for c in range(G):
                    W[F, c] += bias * delta[c]
        it += 1
        for c in range(G):
            if done[c]:
                continue
            iters[c] = it
            if pg_max[c] - pg_min[c] <= eps:
                if n_shrunk[c] == 0:
                    done[c] = True
                    n_done += 1
                    live -= 1
                else:  # converged on the shrunk set: check the whole problem once more
                    for i in range(n):
                        if shrunk[i, c]:
                            shrunk[i, c] = False
                            live[i] += 1
                    n_shrunk[c] = 0
                    pg_max_old[c], pg_min_old[c] = np.inf, -np.inf
                continue
            pg_max_old[c] = pg_max[c] if pg_max[c] > 0 else np.inf
            pg_min_old[c] = pg_min[c] if pg_min[c] < 0 else -np.inf
    return iters


@nb.njit(cache=True, nogil=True)
def _logistic(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, state, w):
    n = y.size
    bias_col = w.size - 1
    alpha = np.empty(2 * n)
    for i in range(n):
        C = Cp if y[i] > 0 else Cn
        alpha[2 * i] = min(0.001 * C, 1e-8)
        alpha[2 * i + 1] = C - alpha[2 * i]
        _axpy(w, y[i] * alpha[2 * i], indptr, indices, data, i, bias_col, bias)
    index = np.arange(n)
    inner_eps, inner_eps_min = 1e-2, min(1e-8, eps)
    it = 0
    while it < max_iter:
        state = shuffle(index, n, state)
        newton_iters = 0
        g_max = 0.0
        for s in range(n):
            i = index[s]
            C = Cp if y[i] > 0 else Cn
            a = xsq[i]
            b = y[i] * _dot(w, indptr, indices, data, i, bias_col, bias)
            i1, i2, sign = 2 * i, 2 * i + 1, 1.0
            if 0.5 * a * (alpha[i2] - alpha[i1]) + b < 0:
                i1, i2, sign = 2 * i + 1, 2 * i, -1.0
            old = alpha[i1]
            z = old
            if C - z < 0.5 * C:
                z = 0.1 * z
            gp = a * (z - old) + sign * b + math.log(z / (C - z))
            g_max = max(g_max, abs(gp))
            inner = 0
            while inner <= 100:
                if abs(gp) < inner_eps:
                    break
                gpp = a + C / (C - z) / z
                tmp = z - gp / gpp
                z = z * 0.1 if tmp <= 0 else tmp
                gp = a * (z - old) + sign * b + math.log(z / (C - z))
                newton_iters += 1
                inner += 1
            if inner > 0:
                alpha[i1] = z
                alpha[i2] = C - z
                _axpy(w, sign * (z - old) * y[i], indptr, indices, data, i, bias_col, bias)
        it += 1
        if g_max < eps:
            break
        if newton_iters <= n / 10:
            inner_eps = max(inner_eps_min, 0.1 * inner_eps)
    return it


@nb.njit(cache=True, nogil=True)
def row_norms_sq(indptr, data, bias):
    """Each row's squared norm, the constant bias feature included."""
    n = indptr.size - 1
    out = np.empty(n)
    for i in range(n):
        acc = bias * bias
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * data[k]
        out[i] = acc
    return out


@nb.njit(cache=True, nogil=True, fastmath=True)
def train_group(indptr, indices, data, xsq, n_features, positives, Cp, Cn, bias, eps, max_iter, loss, seed, key,
                threshold, w_proto):
    """Train the children of one block whose positive rows are ``positives`` (a list of arrays).

    The block's rows are the CSR arrays (``xsq`` from :func:`row_norms_sq`); all rows that are not
    a child's positives are its negatives. ``loss``: 0 squared hinge, 1 hinge, 2 logistic.
    ``key`` makes the group's random stream distinct and independent of scheduling. ``w_proto``'s
    dtype is the precision of the weights during training.

    Returns the kept weights as COO ``(child, feature, value)`` (feature ``n_features`` is the
    bias, always kept; others only where ``|w| >= threshold``) and each child's passes.
    """
    n, G = indptr.size - 1, len(positives)
    W = np.zeros((n_features + 1, G), dtype=w_proto.dtype)
    if loss == 2:  # logistic: one child at a time (its Newton steps do not vectorise)
        iters = np.zeros(G, np.int64)
        w = np.zeros(n_features + 1, dtype=w_proto.dtype)
        for c in range(G):
            y = -np.ones(n)
            y[positives[c]] = 1.0
            w[:] = 0.0
            state = seed_state(seed, key + c)
            iters[c] = _logistic(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, state, w)
            W[:, c] = w
    else:
        y = -np.ones((n, G), np.int8)
        for c in range(G):
            y[positives[c], c] = 1
        state = seed_state(seed, key)
        iters = _svc_group(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, loss == 1, state, W)
    kept = 0
    for f in range(n_features):
        for c in range(G):
            kept += abs(W[f, c]) >= threshold
    child = np.empty(kept + G, np.int64)
    feature = np.empty(kept + G, np.int64)
    value = np.empty(kept + G, w_proto.dtype)
    k = 0
    for f in range(n_features + 1):
        for c in range(G):
            if f == n_features or abs(W[f, c]) >= threshold:
                child[k], feature[k], value[k] = c, f, W[f, c]
                k += 1
    return child, feature, value, iters


def solve_binary(X, y, *, loss: str = "squared_hinge", C: float = 1.0, Cn: float | None = None,
                 bias: float = 1.0, eps: float = 0.1, max_iter: int = 100, seed: int = 0) -> np.ndarray:
    """One binary problem (y in {0, 1} or {-1, 1}); weights ``(n_features + 1,)``, bias last.

    A convenience wrapper over :func:`train_group`, used by tests and small problems.
    """
    W = solve_multi(X, [np.asarray(y) > 0], loss=loss, C=C, Cn=Cn, bias=bias, eps=eps, max_iter=max_iter, seed=seed)
    return W[:, 0]


def solve_multi(X, positives, *, loss: str = "squared_hinge", C: float = 1.0, Cn: float | None = None,
                bias: float = 1.0, eps: float = 0.1, max_iter: int = 100, seed: int = 0) -> np.ndarray:
    """Several binary problems on the same rows, trained together; ``positives`` holds one boolean
    mask per problem. Dense weights ``(n_features + 1, n_problems)`` in float64, bias last."""
    X = sp.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    indptr, indices, data = X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data.astype(np.float64)
    pos = List([np.flatnonzero(mask).astype(np.int64) for mask in positives])
    child, feature, value, _ = train_group(
        indptr, indices, data, row_norms_sq(indptr, data, float(bias)), X.shape[1], pos, float(C),
        float(C if Cn is None else Cn), float(bias), float(eps), int(max_iter), LOSSES.index(loss), int(seed), 0,
        0.0, np.zeros(0, np.float64),
    )
    W = np.zeros((X.shape[1] + 1, len(pos)))
    W[feature, child] = value
    return W
