"""Dual coordinate descent for L2-regularised linear classifiers (LIBLINEAR's algorithms).

- squared hinge and hinge: Hsieh et al., ICML 2008, with LIBLINEAR's shrinking heuristic;
- logistic: Yu, Huang & Lin, MLJ 2011 (a Newton inner solve per coordinate).

A *block* is the training problem of one parent node: the instances routed to it (CSR rows,
features re-indexed to the block) and, for each child, which of those rows are positive. The
children of a block are trained in parallel (numba ``prange``); each has its own deterministic
random stream, so results do not depend on thread scheduling.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

LOSSES = ("squared_hinge", "hinge", "logistic")


@nb.njit(cache=True, inline="always")
def _next(state):
    # xorshift64*: small, fast and good enough to shuffle coordinates
    state ^= state >> np.uint64(12)
    state ^= state << np.uint64(25)
    state ^= state >> np.uint64(27)
    return state, (state * np.uint64(2685821657736338717)) >> np.uint64(33)


@nb.njit(cache=True)
def _shuffle(index, n, state):
    for s in range(n - 1, 0, -1):
        state, r = _next(state)
        t = np.int64(r % np.uint64(s + 1))
        index[s], index[t] = index[t], index[s]
    return state


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


@nb.njit(cache=True, fastmath=True)
def _svc(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, l1, state, w):
    n = y.size
    bias_col = w.size - 1
    alpha = np.zeros(n)
    index = np.arange(n)
    active = n
    pg_max_old, pg_min_old = np.inf, -np.inf
    it = 0
    while it < max_iter:
        pg_max, pg_min = -np.inf, np.inf
        state = _shuffle(index, active, state)
        s = 0
        while s < active:
            i = index[s]
            C = Cp if y[i] > 0 else Cn
            diag = 0.0 if l1 else 0.5 / C
            upper = C if l1 else np.inf
            G = y[i] * _dot(w, indptr, indices, data, i, bias_col, bias) - 1.0 + alpha[i] * diag
            PG = 0.0
            if alpha[i] == 0.0:
                if G > pg_max_old:
                    active -= 1
                    index[s], index[active] = index[active], index[s]
                    continue
                elif G < 0.0:
                    PG = G
            elif alpha[i] == upper:
                if G < pg_min_old:
                    active -= 1
                    index[s], index[active] = index[active], index[s]
                    continue
                elif G > 0.0:
                    PG = G
            else:
                PG = G
            pg_max = max(pg_max, PG)
            pg_min = min(pg_min, PG)
            if abs(PG) > 1e-12:
                old = alpha[i]
                alpha[i] = min(max(old - G / (xsq[i] + diag), 0.0), upper)
                _axpy(w, (alpha[i] - old) * y[i], indptr, indices, data, i, bias_col, bias)
            s += 1
        it += 1
        if pg_max - pg_min <= eps:
            if active == n:
                break
            active = n  # converged on the shrunk set: check the whole problem once more
            pg_max_old, pg_min_old = np.inf, -np.inf
            continue
        pg_max_old = pg_max if pg_max > 0 else np.inf
        pg_min_old = pg_min if pg_min < 0 else -np.inf
    return it


@nb.njit(cache=True)
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
        state = _shuffle(index, n, state)
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


@nb.njit(cache=True, parallel=True, fastmath=True)
def train_block(indptr, indices, data, n_features, pos_ptr, pos_idx, Cp, Cn, bias, eps, max_iter, loss, seed, w_proto):
    """Weights ``(n_children, n_features + 1)`` (last column: bias) and iterations per child.

    ``pos_idx[pos_ptr[j]:pos_ptr[j + 1]]`` are the rows positive for child j; all others are
    negative. ``loss``: 0 squared hinge, 1 hinge, 2 logistic. ``w_proto``'s dtype is the
    precision of the weight vector during training (float32 halves its cache footprint).
    """
    n = indptr.size - 1
    n_children = pos_ptr.size - 1
    xsq = np.empty(n)
    for i in range(n):
        acc = bias * bias
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * data[k]
        xsq[i] = acc
    W = np.zeros((n_children, n_features + 1), dtype=np.float32)
    iters = np.zeros(n_children, dtype=np.int64)
    for j in nb.prange(n_children):
        y = -np.ones(n)
        for p in pos_idx[pos_ptr[j] : pos_ptr[j + 1]]:
            y[p] = 1.0
        w = np.zeros(n_features + 1, dtype=w_proto.dtype)
        state = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(j + 1) * np.uint64(0xBF58476D1CE4E5B9)
        if state == 0:
            state = np.uint64(1)
        if loss == 2:
            iters[j] = _logistic(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, state, w)
        else:
            iters[j] = _svc(indptr, indices, data, xsq, y, Cp, Cn, bias, eps, max_iter, loss == 1, state, w)
        for f in range(n_features + 1):
            W[j, f] = w[f]
    return W, iters


def solve_binary(X, y, *, loss: str = "squared_hinge", C: float = 1.0, Cn: float | None = None,
                 bias: float = 1.0, eps: float = 0.1, max_iter: int = 100, seed: int = 0) -> np.ndarray:
    """One binary problem (y in {0, 1} or {-1, 1}); weights ``(n_features + 1,)``, bias last.

    A convenience wrapper over :func:`train_block`, used by tests and small problems.
    """
    import scipy.sparse as sp

    X = sp.csr_matrix(X, dtype=np.float32)
    X.sort_indices()
    pos = np.flatnonzero(np.asarray(y) > 0).astype(np.int64)
    W, _ = train_block(
        X.indptr.astype(np.int64), X.indices.astype(np.int64), X.data.astype(np.float64), X.shape[1],
        np.array([0, pos.size], np.int64), pos, float(C), float(C if Cn is None else Cn), float(bias),
        float(eps), int(max_iter), LOSSES.index(loss), int(seed), np.zeros(0, np.float64),
    )
    return W[0].astype(np.float64)
