"""Compiled inner loops of ``als``: one conjugate-gradient sweep over the rows of a CSR matrix.

Why compiled: per row, the work is a few d x d mat-vecs and a handful of dot products with
the row's observed columns (about ten on a typical shop). In numpy each of those becomes a
pass over an [nnz, d] temporary in main memory; here they stay in cache, row by row, the
way implicit's C++ does it, and rows run in parallel on every core (numba ``prange``).
``cache=True`` keeps the machine code next to this file, so only the first process pays
the few seconds of compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, fastmath=True, cache=True)
def cg_sweep(indptr, cols, conf, solve_for, fixed, gram, steps):  # pragma: no cover - compiled
    """Update every row x of ``solve_for`` in place by ``steps`` CG steps on its ALS system.

    Row u solves (G + F_u^T (C_u - I) F_u) x = F_u^T C_u 1, G = F^T F + reg I (``gram``),
    F_u the ``fixed`` rows of u's columns ``cols[indptr[u]:indptr[u+1]]`` and C_u their
    confidences ``conf``, starting from the current x (Takacs et al. 2011).
    """
    n, d = solve_for.shape
    for u in prange(n):
        x = solve_for[u].copy()
        r = np.empty(d, np.float32)
        _times_gram(gram, x, r, -1.0)
        for j in range(indptr[u], indptr[u + 1]):  # r = b - A x
            y = fixed[cols[j]]
            c = conf[j]
            w = c - (c - np.float32(1.0)) * _dot(y, x, d)
            for k in range(d):
                r[k] += w * y[k]
        p = r.copy()
        ap = np.empty(d, np.float32)
        rs = _dot(r, r, d)
        for _ in range(steps):
            if rs < 1e-20:
                break
            _times_gram(gram, p, ap, 1.0)
            for j in range(indptr[u], indptr[u + 1]):
                y = fixed[cols[j]]
                w = (conf[j] - np.float32(1.0)) * _dot(y, p, d)
                for k in range(d):
                    ap[k] += w * y[k]
            pap = _dot(p, ap, d)
            if pap <= 0:
                break
            a = rs / pap
            for k in range(d):
                x[k] += a * p[k]
                r[k] -= a * ap[k]
            rs_new = _dot(r, r, d)
            beta = rs_new / rs
            for k in range(d):
                p[k] = r[k] + beta * p[k]
            rs = rs_new
        solve_for[u] = x


@njit(parallel=True, fastmath=True, cache=True)
def observed_loss(indptr, cols, conf, rows_of, cols_of):  # pragma: no cover - compiled
    """Sum over observed cells of c (1 - p)^2 - p^2, p = x_u . y_i: the loss's correction
    to "every cell has p = 0, c = 1" (which the Gram trick sums without visiting cells)."""
    n, d = rows_of.shape
    total = np.zeros(n)
    for u in prange(n):
        x = rows_of[u]
        for j in range(indptr[u], indptr[u + 1]):
            pred = _dot(x, cols_of[cols[j]], d)
            total[u] += conf[j] * (1.0 - pred) ** 2 - pred ** 2
    return total.sum()


@njit(inline="always", fastmath=True)
def _dot(a, b, d):  # pragma: no cover - compiled
    acc = np.float32(0.0)
    for k in range(d):
        acc += a[k] * b[k]
    return acc


@njit(inline="always", fastmath=True)
def _times_gram(gram, v, out, sign):  # pragma: no cover - compiled
    """out = sign * gram @ v (gram symmetric, read by rows: contiguous)."""
    d = len(v)
    for k in range(d):
        out[k] = np.float32(sign) * _dot(gram[k], v, d)
