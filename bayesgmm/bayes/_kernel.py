"""Numba kernel: joint log-density and gradient of the mixture model in one pass.

Called through :class:`bayesgmm.bayes.density.MixtureDensity`, which owns the
layout of the flat vector and the constants; the derivation of the gradient is
in that module's docstring.  One function for every covariance structure
(``cov_code``), compiled once per machine (``cache=True``) in a few seconds,
and run without the GIL so that NUTS chains evaluate in parallel.  The C
callbacks nutpie's Rust core calls (:func:`logp_callback`,
:func:`expand_callback`) are at the end of this file.
"""

from __future__ import annotations

import numba as nb
import numpy as np

FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


@nb.njit(cache=True, nogil=True)
def _softplus(x: float) -> float:
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


@nb.njit(cache=True, nogil=True)
def log_density_grad(theta, grad, Z, reg, alpha, loc, mscale, sd_sigma, beta_a, const,
                     n_components, cov_code):  # pragma: no cover - compiled
    """Write the gradient into ``grad`` and return the log-density (``-inf`` if not PD).

    Parameters
    ----------
    theta : float64[:]
        Flat unconstrained point: ``w_simplex__`` (K-1, when K > 1), ``mu_std``
        (K*D), ``sd_std_log__`` (K, D or K*D), ``cpc_u_logodds__`` (full/tied, D > 1).
    grad : float64[:]
        Output, same length as ``theta``.
    Z : float64[:, :]
        Standardized data.
    reg, loc, mscale : float64[:]
        Variance floor, prior centre and scale of the means (length D).
    alpha : float64[:]
        Dirichlet concentration (length K).
    sd_sigma : float64[:]
        HalfNormal scale of each entry of ``sd_std`` (flattened).
    beta_a : float64[:]
        Beta(a, a) shape of each partial correlation of one matrix.
    const : float
        Sum of the normalizing constants of the priors and Jacobians.
    n_components : int
        ``K``.
    cov_code : int
        ``FULL``, ``TIED``, ``DIAG`` or ``SPHERICAL``.
    """
    N, D = Z.shape
    K = n_components
    chol = (cov_code == FULL or cov_code == TIED) and D > 1
    Kc = 1 if (cov_code == TIED and D > 1) else K  # matrices actually stored
    P = D * (D - 1) // 2
    off_mu = K - 1 if K > 1 else 0
    off_sd = off_mu + K * D
    n_sd = K if cov_code == SPHERICAL else (D if cov_code == TIED else K * D)
    off_cpc = off_sd + n_sd
    grad[:] = 0.0
    value = const

    # weights: simplex transform
    log_w = np.zeros(K)
    if K > 1:
        total = 0.0
        for k in range(K - 1):
            log_w[k] = theta[k]
            total += theta[k]
        log_w[K - 1] = -total
        top = log_w.max()
        acc = 0.0
        for k in range(K):
            acc += np.exp(log_w[k] - top)
        lse = top + np.log(acc)
        for k in range(K):
            log_w[k] -= lse

    # standard deviation of each (matrix, feature)
    sd = np.empty((Kc, D))
    for c in range(Kc):
        for d in range(D):
            if cov_code == SPHERICAL:
                sd[c, d] = np.exp(theta[off_sd + c])
            elif cov_code == TIED:
                sd[c, d] = np.exp(theta[off_sd + d])
            else:
                sd[c, d] = np.exp(theta[off_sd + c * D + d])

    # W = L^-1 of every covariance matrix, log-determinants
    W = np.zeros((Kc, D, D))
    log_det = np.zeros(Kc)
    C = np.zeros((Kc, D, D))
    SR = np.zeros((Kc, D, D))
    Zm = np.zeros((Kc, D, D))
    U = np.zeros((Kc, P))
    if chol:
        L = np.zeros((D, D))
        cov = np.zeros((D, D))
        for c in range(Kc):
            p = 0
            for i in range(D):  # C-vine: correlation Cholesky factor from partial correlations
                rem = 1.0
                for j in range(i):
                    u = 1.0 / (1.0 + np.exp(-theta[off_cpc + c * P + p]))
                    U[c, p] = u
                    z = 2.0 * u - 1.0
                    Zm[c, i, j] = z
                    SR[c, i, j] = np.sqrt(rem)
                    C[c, i, j] = z * SR[c, i, j]
                    rem *= 1.0 - z * z
                    p += 1
                SR[c, i, i] = np.sqrt(rem)
                C[c, i, i] = SR[c, i, i]
            for i in range(D):
                for j in range(i + 1):
                    acc = 0.0
                    for m in range(j + 1):
                        acc += C[c, i, m] * C[c, j, m]
                    cov[i, j] = sd[c, i] * sd[c, j] * acc
                cov[i, i] += reg[i]
            for i in range(D):  # Cholesky
                for j in range(i + 1):
                    acc = cov[i, j]
                    for m in range(j):
                        acc -= L[i, m] * L[j, m]
                    if i == j:
                        if not acc > 0.0:
                            grad[:] = 0.0
                            return -np.inf
                        L[i, i] = np.sqrt(acc)
                    else:
                        L[i, j] = acc / L[j, j]
            for j in range(D):  # W = L^-1, column by column
                W[c, j, j] = 1.0 / L[j, j]
                for i in range(j + 1, D):
                    acc = 0.0
                    for m in range(j, i):
                        acc += L[i, m] * W[c, m, j]
                    W[c, i, j] = -acc / L[i, i]
            for i in range(D):
                log_det[c] += np.log(L[i, i])
    else:
        for c in range(Kc):
            for d in range(D):
                var = sd[c, d] * sd[c, d] + reg[d]
                W[c, d, d] = 1.0 / np.sqrt(var)
                log_det[c] += 0.5 * np.log(var)

    # likelihood: one pass over the points, sufficient statistics per component
    mu = theta[off_mu:off_mu + K * D].reshape((K, D))
    Nk = np.zeros(K)
    B = np.zeros((K, D))
    M = np.zeros((K, D, D))
    y = np.zeros((K, D))
    lc = np.empty(K)
    for n in range(N):
        for k in range(K):
            c = 0 if Kc == 1 else k
            sq = 0.0
            for i in range(D):
                if chol:
                    acc = 0.0
                    for j in range(i + 1):
                        acc += W[c, i, j] * (Z[n, j] - mu[k, j])
                else:
                    acc = W[c, i, i] * (Z[n, i] - mu[k, i])
                y[k, i] = acc
                sq += acc * acc
            lc[k] = log_w[k] - 0.5 * sq - log_det[c] - D * _HALF_LOG_2PI
        top = lc.max()
        acc = 0.0
        for k in range(K):
            acc += np.exp(lc[k] - top)
        lse = top + np.log(acc)
        value += lse
        for k in range(K):
            r = np.exp(lc[k] - lse)
            Nk[k] += r
            for i in range(D):
                ry = r * y[k, i]
                B[k, i] += ry
                if chol:
                    for j in range(i + 1):
                        M[k, i, j] += ry * y[k, j]
                else:
                    M[k, i, i] += ry * y[k, i]

    # weights: Dirichlet prior + log-Jacobian = sum alpha log w (+ const)
    if K > 1:
        total = 0.0
        for k in range(K):
            value += alpha[k] * log_w[k]
            total += alpha[k] + Nk[k]
        g_last = alpha[K - 1] + Nk[K - 1] - total * np.exp(log_w[K - 1])
        for k in range(K - 1):
            grad[k] = alpha[k] + Nk[k] - total * np.exp(log_w[k]) - g_last

    # means: Normal prior + likelihood
    for k in range(K):
        c = 0 if Kc == 1 else k
        for j in range(D):
            dev = (mu[k, j] - loc[j]) / mscale[j]
            value -= 0.5 * dev * dev
            g = -dev / mscale[j]
            if chol:
                for i in range(j, D):
                    g += W[c, i, j] * B[k, i]
            else:
                g += W[c, j, j] * B[k, j]
            grad[off_mu + k * D + j] = g

    # standard deviations: HalfNormal prior + log-Jacobian
    for s in range(n_sd):
        ls = theta[off_sd + s]
        ratio = np.exp(ls) / sd_sigma[s]
        value += ls - 0.5 * ratio * ratio
        grad[off_sd + s] = 1.0 - ratio * ratio

    if not chol:  # d/dvar = (M_dd - N_k) / (2 var); d var / d log sd = 2 sd^2
        for k in range(K):
            for d in range(D):
                g = (M[k, d, d] - Nk[k]) * W[k, d, d] ** 2 * sd[k, d] ** 2
                if cov_code == SPHERICAL:
                    grad[off_sd + k] += g
                elif cov_code == TIED:
                    grad[off_sd + d] += g
                else:
                    grad[off_sd + k * D + d] += g
        return value

    # dL/dSigma = W^T (M - N I) W / 2, summed over components sharing a matrix
    G = np.zeros((Kc, D, D))
    T = np.zeros((D, D))
    TW = np.zeros((D, D))
    for k in range(K):
        c = 0 if Kc == 1 else k
        for i in range(D):
            for j in range(i + 1):
                T[i, j] = M[k, i, j] - (Nk[k] if i == j else 0.0)
                T[j, i] = T[i, j]
        for i in range(D):  # TW = T W (W lower)
            for b in range(D):
                acc = 0.0
                for j in range(b, D):
                    acc += T[i, j] * W[c, j, b]
                TW[i, b] = acc
        for a in range(D):  # G += W^T TW / 2
            for b in range(D):
                acc = 0.0
                for i in range(a, D):
                    acc += W[c, i, a] * TW[i, b]
                G[c, a, b] += 0.5 * acc
    g_A = np.zeros((D, D))
    g_C = np.zeros((D, D))
    for c in range(Kc):
        for i in range(D):  # g_A = 2 G A, A = diag(sd) C (lower)
            for m in range(i + 1):
                acc = 0.0
                for j in range(m, D):
                    acc += G[c, i, j] * sd[c, j] * C[c, j, m]
                g_A[i, m] = 2.0 * acc
        for i in range(D):
            g_sd = 0.0
            for m in range(i + 1):
                g_sd += g_A[i, m] * C[c, i, m]
                g_C[i, m] = sd[c, i] * g_A[i, m]
            s = i if cov_code == TIED else c * D + i
            grad[off_sd + s] += g_sd * sd[c, i]
        p = 0
        for i in range(D):  # back through the C-vine to z, then u, then log-odds
            for m in range(i):
                after = 0.0
                for j in range(m + 1, i + 1):
                    after += g_C[i, j] * C[c, i, j]
                z = Zm[c, i, m]
                g_z = g_C[i, m] * SR[c, i, m] - z / (1.0 - z * z) * after
                u = U[c, p]
                a = beta_a[p]
                ylog = theta[off_cpc + c * P + p]
                value -= a * (_softplus(-ylog) + _softplus(ylog))
                grad[off_cpc + c * P + p] = a * (1.0 - 2.0 * u) + g_z * 2.0 * u * (1.0 - u)
                p += 1
    return value


# ---------------------------------------------------------------------------
# C callbacks for nutpie (compiled by bayesgmm.bayes._nutpie_bridge).  They live
# in this file because Numba's disk cache checks only the source file of the
# function it caches: a change to the kernel must invalidate them too.
# ---------------------------------------------------------------------------

#: Length of the data buffer's header (:func:`bayesgmm.bayes._nutpie_bridge.pack_arguments`).
HEADER = 7

LOGP_SIGNATURE = nb.types.int64(
    nb.types.uint64,
    nb.types.CPointer(nb.types.float64),
    nb.types.CPointer(nb.types.float64),
    nb.types.CPointer(nb.types.float64),
    nb.types.CPointer(nb.types.float64),
)
EXPAND_SIGNATURE = nb.types.int64(
    nb.types.uint64,
    nb.types.uint64,
    nb.types.CPointer(nb.types.float64),
    nb.types.CPointer(nb.types.float64),
    nb.types.CPointer(nb.types.float64),
)


def logp_callback(dim, x_ptr, grad_ptr, logp_ptr, buf_ptr):  # pragma: no cover - compiled
    """Log-density callback for nutpie: 0 on success, 3/4 for a non-finite gradient/value."""
    head = nb.carray(buf_ptr, (HEADER,))
    N, D, K = int(head[1]), int(head[2]), int(head[3])
    cov_code, n_dim = int(head[4]), int(head[5])
    if dim != n_dim:
        return -1
    buf = nb.carray(buf_ptr, (int(head[0]),))
    n_sd = K if cov_code == SPHERICAL else (D if cov_code == TIED else K * D)
    o = HEADER
    Z = buf[o:o + N * D].reshape((N, D))
    o += N * D
    reg = buf[o:o + D]
    o += D
    alpha = buf[o:o + K]
    o += K
    loc = buf[o:o + D]
    o += D
    mscale = buf[o:o + D]
    o += D
    sd_sigma = buf[o:o + n_sd]
    o += n_sd
    beta_a = buf[o:]
    x = nb.carray(x_ptr, (n_dim,))
    grad = nb.carray(grad_ptr, (n_dim,))
    value = log_density_grad(x, grad, Z, reg, alpha, loc, mscale, sd_sigma, beta_a, head[6],
                             K, cov_code)
    logp = nb.carray(logp_ptr, (1,))
    logp[0] = value
    if not np.isfinite(value):
        return 4
    for i in range(n_dim):
        if not np.isfinite(grad[i]):
            return 3
    return 0


def expand_callback(dim, expanded, x_ptr, out_ptr, buf_ptr):  # pragma: no cover - compiled
    """Draw-storage callback for nutpie: the stored values are the flat vector itself."""
    if dim != expanded:
        return -1
    x = nb.carray(x_ptr, (dim,))
    out = nb.carray(out_ptr, (dim,))
    for i in range(dim):
        out[i] = x[i]
    return 0
