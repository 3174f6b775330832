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


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _softplus(x: float) -> float:
    return max(x, 0.0) + np.log1p(np.exp(-abs(x)))


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _log_weights(theta, K):  # pragma: no cover - compiled
    """Log-weights from the simplex-transformed vector: f = [y, -sum y], f - lse(f)."""
    log_w = np.zeros(K)
    if K == 1:
        return log_w
    total = 0.0
    for k in range(K - 1):
        log_w[k] = theta[k]
        total += theta[k]
    log_w[K - 1] = -total
    top = log_w.max()
    acc = 0.0
    for k in range(K):
        acc += np.exp(log_w[k] - top)
    return log_w - (top + np.log(acc))


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _standard_deviations(theta, off_sd, Kc, D, cov_code):  # pragma: no cover - compiled
    """Standard deviations ``sd[c, d]`` of stored matrix ``c``, feature ``d`` (from log sd)."""
    sd = np.empty((Kc, D))
    for c in range(Kc):
        for d in range(D):
            if cov_code == SPHERICAL:
                sd[c, d] = np.exp(theta[off_sd + c])
            elif cov_code == TIED:
                sd[c, d] = np.exp(theta[off_sd + d])
            else:
                sd[c, d] = np.exp(theta[off_sd + c * D + d])
    return sd


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _correlation_factors(theta, off_cpc, Kc, D):  # pragma: no cover - compiled
    """C-vine Cholesky factors ``C`` of the correlations, with the pieces their gradient needs.

    Returns ``C``, ``SR`` (``prod_{m<j} sqrt(1 - z_im^2)`` at ``[i, j]``), ``Zm``
    (the partial correlations ``z`` at ``[i, j]``) and ``Q`` (``1 - z^2`` at
    ``[i, j]``), each per stored matrix.  With ``y`` the log-odds of
    ``u = (z + 1) / 2``, ``z = tanh(y / 2)`` and ``1 - z^2 = 4 u (1 - u)`` is
    computed from ``log u`` and ``log(1 - u)``: it stays positive where ``z``
    itself rounds to +-1 (``|y|`` above about 37).
    """
    P = D * (D - 1) // 2
    C = np.zeros((Kc, D, D))
    SR = np.zeros((Kc, D, D))
    Zm = np.zeros((Kc, D, D))
    Q = np.zeros((Kc, D, D))
    for c in range(Kc):
        p = 0
        for i in range(D):
            rem = 1.0
            for j in range(i):
                y = theta[off_cpc + c * P + p]
                z = np.tanh(0.5 * y)
                q = 4.0 * np.exp(-(_softplus(y) + _softplus(-y)))
                Zm[c, i, j] = z
                Q[c, i, j] = q
                SR[c, i, j] = np.sqrt(rem)
                C[c, i, j] = z * SR[c, i, j]
                rem *= q
                p += 1
            SR[c, i, i] = np.sqrt(rem)
            C[c, i, i] = SR[c, i, i]
    return C, SR, Zm, Q


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _inverse_cholesky(C, sd, reg):  # pragma: no cover - compiled
    """``W = L^-1`` and ``log det L`` for ``L L^T = diag(sd) C C^T diag(sd) + diag(reg)``.

    Returns ``ok=False`` when a matrix is not positive definite.
    """
    Kc, D = sd.shape
    W = np.zeros((Kc, D, D))
    log_det = np.zeros(Kc)
    L = np.zeros((D, D))
    cov = np.zeros((D, D))
    for c in range(Kc):
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
                        return W, log_det, False
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
    return W, log_det, True


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _likelihood_pass(Z, mu, log_w, W, log_det, chol):  # pragma: no cover - compiled
    """Marginal log-likelihood and the responsibility-weighted statistics of ``y = W (z - mu)``.

    Returns ``loglik``, ``Nk`` (sum of responsibilities), ``B`` (sum of ``r y``)
    and ``M`` (sum of ``r y y^T``, lower triangle; diagonal only when not ``chol``).
    """
    N, D = Z.shape
    K = mu.shape[0]
    shared = W.shape[0] == 1 and K > 1
    loglik = 0.0
    Nk = np.zeros(K)
    B = np.zeros((K, D))
    M = np.zeros((K, D, D))
    y = np.zeros((K, D))
    lc = np.empty(K)
    for n in range(N):
        for k in range(K):
            c = 0 if shared else k
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
        loglik += lse
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
    return loglik, Nk, B, M


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _sigma_gradient(M, Nk, W):  # pragma: no cover - compiled
    """dL/dSigma = W^T (M - N I) W / 2 per stored matrix (summed over components sharing it)."""
    K, D = M.shape[0], M.shape[1]
    Kc = W.shape[0]
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
    return G


@nb.njit(cache=True, nogil=True, error_model="numpy")
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
    D = Z.shape[1]
    K = n_components
    chol = (cov_code == FULL or cov_code == TIED) and D > 1
    Kc = 1 if (cov_code == TIED and D > 1) else K  # covariance matrices actually stored
    P = D * (D - 1) // 2
    off_mu = K - 1 if K > 1 else 0
    off_sd = off_mu + K * D
    n_sd = K if cov_code == SPHERICAL else (D if cov_code == TIED else K * D)
    off_cpc = off_sd + n_sd
    grad[:] = 0.0

    log_w = _log_weights(theta, K)
    mu = theta[off_mu:off_mu + K * D].reshape((K, D))
    sd = _standard_deviations(theta, off_sd, Kc, D, cov_code)
    if chol:
        C, SR, Zm, Q = _correlation_factors(theta, off_cpc, Kc, D)
        W, log_det, ok = _inverse_cholesky(C, sd, reg)
        if not ok:
            return -np.inf
    else:  # diagonal covariances: W = diag(1 / sqrt(var))
        W = np.zeros((Kc, D, D))
        log_det = np.zeros(Kc)
        for c in range(Kc):
            for d in range(D):
                var = sd[c, d] * sd[c, d] + reg[d]
                W[c, d, d] = 1.0 / np.sqrt(var)
                log_det[c] += 0.5 * np.log(var)
    value, Nk, B, M = _likelihood_pass(Z, mu, log_w, W, log_det, chol)
    value += const

    # weights: Dirichlet prior + log-Jacobian = sum alpha log w (+ const)
    if K > 1:
        total = 0.0
        for k in range(K):
            value += alpha[k] * log_w[k]
            total += alpha[k] + Nk[k]
        g_last = alpha[K - 1] + Nk[K - 1] - total * np.exp(log_w[K - 1])
        for k in range(K - 1):
            grad[k] = alpha[k] + Nk[k] - total * np.exp(log_w[k]) - g_last

    # means: Normal prior + likelihood (W^T B)
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

    G = _sigma_gradient(M, Nk, W)
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
                # dL/dz = g_C[i, m] SR[i, m] - z / (1 - z^2) * after and dz/dy =
                # 2 u (1 - u) = (1 - z^2) / 2: their product has no division
                z, q = Zm[c, i, m], Q[c, i, m]
                g_y = 0.5 * (g_C[i, m] * SR[c, i, m] * q - z * after)
                a = beta_a[p]
                ylog = theta[off_cpc + c * P + p]
                # Beta(a, a) prior with the log-odds log-Jacobian: a (log u + log(1 - u)),
                # whose derivative is a (1 - 2 u) = -a z
                value -= a * (_softplus(-ylog) + _softplus(ylog))
                grad[off_cpc + c * P + p] = g_y - a * z
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
    logp = nb.carray(logp_ptr, (1,))
    logp[0] = np.nan
    try:  # an exception must not reach nutpie as success (Numba would print it, return 0)
        value = log_density_grad(x, grad, Z, reg, alpha, loc, mscale, sd_sigma, beta_a,
                                 head[6], K, cov_code)
    except Exception:
        return 1
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
