"""Numba kernels of EM on incomplete data: the ragged per-pattern and per-row work.

:mod:`bayesgmm.em_missing` does the dense work with BLAS (``Lambda_k z_n``
for every row and component in one matrix product, the M-step's second
moments in another). What is left is small and ragged: ``Lambda_k d_nk``,
with ``d_nk = o_n * (z_n - mu_k)``, is ``Lambda_k z_n`` less one offset per
pattern and component; one ``m x m`` block per pattern and component; ``m``
entries per row. NumPy can only do that through gathers and per-matrix
LAPACK calls; these loops do it in place. Compiled once per machine
(``cache=True``), run without the GIL.

All patterns of a group have the same number ``m`` of missing entries;
``missing[p]`` lists pattern ``p``'s missing columns and ``local[n]`` is the
pattern of row ``n`` within the group.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = [
    "accumulate",
    "add_conditional",
    "column_moments",
    "factor_group",
    "fill_layout",
    "log_densities",
    "offsets",
    "pattern_codes",
    "rows",
    "sample_rows",
]

_LOG_2PI = np.log(2.0 * np.pi)


@nb.njit(cache=True, nogil=True)
def column_moments(X):  # pragma: no cover - compiled
    """Mean and sd (ddof 0) of the observed (non-NaN) values of every column, two passes.

    A column with no observed value gets mean 0 and sd 0.
    """
    n, d = X.shape
    counts = np.zeros(d)
    center = np.zeros(d)
    for i in range(n):
        for j in range(d):
            x = X[i, j]
            if x == x:
                counts[j] += 1.0
                center[j] += x
    for j in range(d):
        center[j] /= max(counts[j], 1.0)
    squares = np.zeros(d)
    for i in range(n):
        for j in range(d):
            x = X[i, j]
            if x == x:
                squares[j] += (x - center[j]) ** 2
    sd = np.empty(d)
    for j in range(d):
        sd[j] = np.sqrt(squares[j] / max(counts[j], 1.0))
    return center, sd


@nb.njit(cache=True, nogil=True)
def pattern_codes(X):  # pragma: no cover - compiled
    """Per row: ``sum_j 2^j [x_j observed]`` plus ``2^D`` times the number of missing entries.

    Sorting rows by this key groups them by number of missing entries, then by
    pattern (``D <= 56``, so the key fits in an int64).
    """
    n, d = X.shape
    key = np.empty(n, dtype=np.int64)
    for i in range(n):
        code = np.int64(0)
        missing = np.int64(0)
        for j in range(d):
            if X[i, j] == X[i, j]:
                code |= np.int64(1) << j
            else:
                missing += 1
        key[i] = code | (missing << d)
    return key


@nb.njit(cache=True, nogil=True)
def fill_layout(X, order, center, scale, log_scale, zo, log_jacobian):  # pragma: no cover
    """``zo[r] = [z | o]`` of row ``order[r]`` in working units, missing entries at 0.

    ``z = (x - center) / scale`` where observed, ``o`` the 0/1 observed mask;
    ``log_jacobian[order[r]]`` is the sum of ``log_scale`` over the row's
    observed columns.
    """
    n, d = X.shape
    for r in range(n):
        i = order[r]
        jac = 0.0
        for j in range(d):
            x = X[i, j]
            if x == x:
                zo[r, j] = (x - center[j]) / scale[j]
                zo[r, d + j] = 1.0
                jac += log_scale[j]
            else:
                zo[r, j] = 0.0
                zo[r, d + j] = 0.0
        log_jacobian[i] = jac


@nb.njit(cache=True, nogil=True, error_model="numpy")
def factor_group(precisions, missing):  # pragma: no cover - compiled
    """``Lambda_kMM^-1`` and ``log det Lambda_kMM`` of every pattern of a group.

    Cholesky ``Lambda_MM = L L'``, ``log det = 2 sum log L_ii``, ``L^-1`` by
    forward substitution, ``Lambda_MM^-1 = L^-T L^-1``; the loops run over
    all ``K x P`` blocks innermost (the blocks are tiny and many).

    Parameters
    ----------
    precisions : (K, D, D)
    missing : (P, m) int

    Returns
    -------
    inv : (K, P, m, m)
    log_det : (K, P); ``nan`` where a block is not positive definite.
    """
    k_all = precisions.shape[0]
    n_pat, m = missing.shape
    size = k_all * n_pat
    a = np.empty((m, m, size))
    for k in range(k_all):
        for p in range(n_pat):
            b = k * n_pat + p
            for i in range(m):
                ci = missing[p, i]
                for j in range(i + 1):
                    a[i, j, b] = precisions[k, ci, missing[p, j]]
    log_det = np.zeros(size)
    scale = np.empty(size)
    for j in range(m):  # Cholesky, in place in the lower triangle
        for t in range(j):
            for b in range(size):
                a[j, j, b] -= a[j, t, b] * a[j, t, b]
        for b in range(size):
            s = a[j, j, b]
            if s > 0.0:
                root = np.sqrt(s)
                log_det[b] += 2.0 * np.log(root)
            else:
                root = 1.0
                log_det[b] = np.nan
            a[j, j, b] = root
            scale[b] = 1.0 / root
        for i in range(j + 1, m):
            for t in range(j):
                for b in range(size):
                    a[i, j, b] -= a[i, t, b] * a[j, t, b]
            for b in range(size):
                a[i, j, b] *= scale[b]
    low = np.zeros((m, m, size))  # L^-1, column by column
    for j in range(m):
        for b in range(size):
            low[j, j, b] = 1.0 / a[j, j, b]
        for i in range(j + 1, m):
            for t in range(j, i):
                for b in range(size):
                    low[i, j, b] -= a[i, t, b] * low[t, j, b]
            for b in range(size):
                low[i, j, b] /= a[i, i, b]
    inv = np.empty((k_all, n_pat, m, m))
    acc = np.empty(size)
    for i in range(m):  # (L^-T L^-1)_ij = sum_{t >= i} low[t, i] low[t, j], j <= i
        for j in range(i + 1):
            for b in range(size):
                acc[b] = 0.0
            for t in range(i, m):
                for b in range(size):
                    acc[b] += low[t, i, b] * low[t, j, b]
            for k in range(k_all):
                for p in range(n_pat):
                    value = acc[k * n_pat + p]
                    inv[k, p, i, j] = value
                    inv[k, p, j, i] = value
    return inv, log_det.reshape(k_all, n_pat)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def offsets(precisions, means, missing):  # pragma: no cover - compiled
    """``Lambda_k (o_p * mu_k)`` of every pattern ``p`` of a group and component ``k``.

    ``o_p * mu_k`` is ``mu_k`` with pattern ``p``'s missing coordinates at 0,
    so the offset is ``Lambda_k mu_k - Lambda_k[:, M] mu_kM``.

    Returns
    -------
    out : (P, K, D)
    """
    k_all, d, _ = precisions.shape
    n_pat, m = missing.shape
    full = np.zeros((k_all, d))
    for k in range(k_all):
        for e in range(d):
            acc = 0.0
            for j in range(d):
                acc += precisions[k, e, j] * means[k, j]
            full[k, e] = acc
    out = np.empty((n_pat, k_all, d))
    for p in range(n_pat):
        for k in range(k_all):
            for e in range(d):
                acc = full[k, e]
                for i in range(m):
                    c = missing[p, i]
                    acc -= precisions[k, e, c] * means[k, c]
                out[p, k, e] = acc
    return out


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"},
         inline="always")
def _schur(v, zo, means, n, k, missing, p, inv, offset, t, s):  # pragma: no cover - compiled
    """Quadratic form of row ``n``'s observed part under component ``k``.

    ``zo[n]`` is ``[z_n | o_n]`` (the row, missing entries at 0, and its 0/1
    observed mask), ``d = o_n (z_n - mu_k)``, ``v[n, k] = Lambda_k z_n`` and
    ``v[n, k] - offset[p, k] = Lambda_k d``. With ``M = missing[p]``, ``t =
    (Lambda_k d)_M`` and ``s = Lambda_kMM^-1 t = inv[k, p] @ t`` (both filled
    in place), returns ``d' Lambda_k d - t' s = d_O' Sigma_kOO^-1 d_O``;
    ``-s = E[x_M | x_O, k] - mu_kM``.
    """
    d = means.shape[1]
    m = missing.shape[1]
    quad = 0.0
    for j in range(d):
        quad += (zo[n, j] - means[k, j]) * zo[n, d + j] * (v[n, k, j] - offset[p, k, j])
    for i in range(m):
        c = missing[p, i]
        t[i] = v[n, k, c] - offset[p, k, c]
    for i in range(m):
        acc = 0.0
        for j in range(m):
            acc += inv[k, p, i, j] * t[j]
        s[i] = acc
        quad -= t[i] * acc
    return quad


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def rows(v, zo, means, local, missing, inv, const, offset, log_prob,
         completed):  # pragma: no cover - compiled
    """Weighted log-densities of the observed parts and the completed rows, in place.

    For row ``n`` of pattern ``p = local[n]`` and component ``k`` (see
    :func:`_schur`): ``log_prob[n, k] = const[k, p] - quad / 2``, where
    ``const`` holds ``log w_k - ((D - m) log 2 pi + log det Sigma_k + log det
    Lambda_kMM) / 2``, and ``completed[n, k]`` is the row minus ``mu_k`` with
    its missing coordinates at ``E[x_M | x_O, k] - mu_kM = -s`` (left
    untouched when ``completed`` has no rows).
    """
    n_rows, k_all, d = v.shape
    fill = completed.shape[0] > 0
    m = missing.shape[1]
    t = np.empty(m)
    s = np.empty(m)
    for n in range(n_rows):
        p = local[n]
        for k in range(k_all):
            quad = _schur(v, zo, means, n, k, missing, p, inv, offset, t, s)
            log_prob[n, k] = const[k, p] - 0.5 * quad
            if not fill:
                continue
            for j in range(d):
                completed[n, k, j] = zo[n, j] - means[k, j]
            for i in range(m):
                completed[n, k, missing[p, i]] = -s[i]


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def log_densities(v, zo, means, local, missing, inv, const, offset,
                  log_prob):  # pragma: no cover - compiled
    """``log_prob`` of :func:`rows` alone (no completed rows: the E-step of a prediction)."""
    rows(v, zo, means, local, missing, inv, const, offset, log_prob, np.empty((0, 0, 0)))


@nb.njit(cache=True, nogil=True, error_model="numpy", fastmath={"reassoc", "contract"})
def accumulate(v, zo, means, local, missing, inv, const, offset, scaled, roots,
               pattern_sums):  # pragma: no cover - compiled
    """E-step of a block for the M-step; returns the block's log-likelihood.

    As :func:`rows`, then per row the responsibilities ``r_nk``:
    ``scaled[k, n] = sqrt(r_nk) c_nk`` (``c_nk`` the completed row minus
    ``mu_k``, so ``scaled[k].T @ scaled[k]`` is the weighted second moment
    about ``mu_k``), ``roots[k, n] = sqrt(r_nk)`` (so ``roots[k] @
    scaled[k]`` is ``sum_n r_nk c_nk``) and ``pattern_sums[k, p] += r_nk``.
    The completed rows are written once, scaled (not stored, then scaled).
    """
    n_rows, k_all, d = v.shape
    m = missing.shape[1]
    shift = np.empty((k_all, m))
    t = np.empty(m)
    weight = np.empty(k_all)
    total = 0.0
    for n in range(n_rows):
        p = local[n]
        top = -np.inf
        for k in range(k_all):
            quad = _schur(v, zo, means, n, k, missing, p, inv, offset, t, shift[k])
            weight[k] = const[k, p] - 0.5 * quad
            top = max(top, weight[k])
        if not np.isfinite(top):
            top = 0.0
        acc = 0.0
        for k in range(k_all):
            weight[k] = np.exp(weight[k] - top)
            acc += weight[k]
        total += top + np.log(acc)
        for k in range(k_all):
            r = weight[k] / acc
            pattern_sums[k, p] += r
            root = np.sqrt(r)
            roots[k, n] = root
            for j in range(d):
                scaled[k, n, j] = root * (zo[n, j] - means[k, j])
            for i in range(m):
                scaled[k, n, missing[p, i]] = -root * shift[k, i]
    return total


@nb.njit(cache=True, nogil=True, error_model="numpy")
def sample_rows(out, pick, completed, means, local, missing, inv,
                noise):  # pragma: no cover - compiled
    """Missing entries drawn from ``N(E[x_M | x_O, k], Lambda_kMM^-1)``, ``k = pick[n]``.

    ``out[n, i] = mu_kc + completed[n, k, c] + (C noise[n])_i`` for the
    ``i``-th missing column ``c`` of row ``n``, with ``C`` the lower Cholesky
    factor of ``Lambda_kMM^-1`` (working units).
    """
    n_rows, m = out.shape
    low = np.zeros((m, m))
    for n in range(n_rows):
        p = local[n]
        k = pick[n]
        blk = inv[k, p]
        for i in range(m):
            for j in range(i + 1):
                s = blk[i, j]
                for t in range(j):
                    s -= low[i, t] * low[j, t]
                low[i, j] = np.sqrt(max(s, 0.0)) if i == j else s / low[j, j]
        for i in range(m):
            col = missing[p, i]
            s = means[k, col] + completed[n, k, col]
            for j in range(i + 1):
                s += low[i, j] * noise[n, j]
            out[n, i] = s


@nb.njit(cache=True, nogil=True, error_model="numpy")
def add_conditional(full, pattern_sums, missing, inv):  # pragma: no cover - compiled
    """``full[k][M_p, M_p] += pattern_sums[k, p] * Lambda_kMM^-1`` for every pattern of a group."""
    k_all = full.shape[0]
    n_pat, m = missing.shape
    for k in range(k_all):
        for p in range(n_pat):
            w = pattern_sums[k, p]
            for i in range(m):
                ci = missing[p, i]
                for j in range(m):
                    full[k, ci, missing[p, j]] += w * inv[k, p, i, j]
