"""Numba kernel: joint log-density and gradient of the mixture model in one pass.

Called through :class:`bayesgmm.bayes.density.MixtureDensity`, which owns the
layout of the flat vector and the constants; the derivation of the gradient is
in that module's docstring.  One function for every covariance structure
(``cov_code``), compiled once per machine (``cache=True``) in a few seconds,
and run without the GIL so that NUTS chains evaluate in parallel.  The C
callbacks nutpie's Rust core calls (:func:`logp_callback`,
:func:`expand_callback`) are at the end of this file.

Missing entries are NaN in ``Z``.  A row's likelihood is then the density of
its observed coordinates ``O``, ``N(z_O | mu_kO, Sigma_kOO)`` (the missing
ones marginalised, as in :func:`bayesgmm.bayes.model._observed_row_log_likelihood`).
The rows are walked in runs of one missingness pattern (:func:`pattern_sorted`
puts each pattern's rows together, so there is one run per pattern); for each
run and stored matrix the principal sub-block ``Sigma_OO`` is taken from
``Sigma`` and factorised, ``|O|^3 / 3`` flops.  That is the cheapest sound
route: a principal sub-matrix of a positive definite matrix is positive
definite and no worse conditioned, whereas the rows ``O`` of the full factor
``L`` would need a QR of the ``D x |O|`` block ``L_O^T`` to give a triangular
factor of the same matrix.  No derivative through that factorisation is
needed: ``d/dSigma_OO = (P S P - N P) / 2`` with ``P = Sigma_OO^-1`` (the
complete-data formula in the observed block), and ``Sigma_OO`` is a block of
``Sigma``, so the run's gradient is that matrix placed in the rows and
columns ``O`` of ``d/dSigma``, which then goes back to the flat parameters
exactly as for complete data.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

FULL, TIED, DIAG, SPHERICAL = 0, 1, 2, 3
_HALF_LOG_2PI = 0.5 * np.log(2.0 * np.pi)


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _log_sum_exp(lc):  # pragma: no cover - compiled
    """``log(sum(exp(lc)))`` of a 1-D array, shifted by its maximum."""
    top = lc.max()
    acc = 0.0
    for k in range(lc.shape[0]):
        acc += np.exp(lc[k] - top)
    return top + np.log(acc)


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
    return log_w - _log_sum_exp(log_w)


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


#: Rows per block of the likelihood pass: its per-block buffers (K D + D + K + 3 rows of
#: this length) stay in the L1/L2 cache, and every inner loop runs over them contiguously.
_ROWS = 128


@nb.njit(cache=True, nogil=True, error_model="numpy",
         fastmath={"reassoc", "contract", "arcp"})
def _likelihood_pass(Z, mu, log_w, W, log_det, chol):  # pragma: no cover - compiled
    """Marginal log-likelihood and the responsibility-weighted statistics of ``y = W (z - mu)``.

    Returns ``loglik``, ``Nk`` (sum of responsibilities), ``B`` (sum of ``r y``)
    and ``M`` (sum of ``r y y^T``, lower triangle; diagonal only when not ``chol``).

    Vectorised over observations: rows are taken in blocks of :data:`_ROWS`, with
    features and components outside and the rows of a block as the innermost,
    contiguous loop (``z - mu``, ``y = W (z - mu)``, the squared norms, a fused
    log-sum-exp that takes each exponential once, and the sums into ``Nk``, ``B``
    and ``M``), so that the compiler can use SIMD instructions. ``fastmath``
    allows reassociating these sums (rounding-level changes) but keeps IEEE
    infinities and NaN.
    """
    N, D = Z.shape
    K = mu.shape[0]
    shared = W.shape[0] == 1 and K > 1
    R = _ROWS
    loglik = 0.0
    Nk = np.zeros(K)
    B = np.zeros((K, D))
    M = np.zeros((K, D, D))
    diff = np.empty((D, R))
    Y = np.empty((K, D, R))
    lc = np.empty((K, R))
    top = np.empty(R)
    tot = np.empty(R)
    ry = np.empty(R)
    const = np.empty(K)
    for k in range(K):
        const[k] = log_w[k] - log_det[0 if shared else k] - D * _HALF_LOG_2PI
    for n0 in range(0, N, R):
        m = min(R, N - n0)
        for k in range(K):
            c = 0 if shared else k
            for j in range(D):
                mj = mu[k, j]
                for r in range(m):
                    diff[j, r] = Z[n0 + r, j] - mj
            for r in range(m):
                lc[k, r] = 0.0
            for i in range(D):
                if chol:
                    for r in range(m):
                        Y[k, i, r] = 0.0
                    for j in range(i + 1):
                        wij = W[c, i, j]
                        for r in range(m):
                            Y[k, i, r] += wij * diff[j, r]
                else:
                    wii = W[c, i, i]
                    for r in range(m):
                        Y[k, i, r] = wii * diff[i, r]
                for r in range(m):
                    lc[k, r] += Y[k, i, r] * Y[k, i, r]
            ck = const[k]
            for r in range(m):
                lc[k, r] = ck - 0.5 * lc[k, r]
        for r in range(m):
            top[r] = lc[0, r]
            tot[r] = 0.0
        for k in range(1, K):
            for r in range(m):
                top[r] = max(top[r], lc[k, r])
        for k in range(K):  # fused log-sum-exp: each exponential once, reused below
            for r in range(m):
                e = np.exp(lc[k, r] - top[r])
                lc[k, r] = e
                tot[r] += e
        for r in range(m):
            loglik += top[r] + np.log(tot[r])
            tot[r] = 1.0 / tot[r]
        for k in range(K):
            s0 = 0.0
            for r in range(m):
                lc[k, r] *= tot[r]  # the responsibility
                s0 += lc[k, r]
            Nk[k] += s0
            for i in range(D):
                b = 0.0
                for r in range(m):
                    ry[r] = lc[k, r] * Y[k, i, r]
                    b += ry[r]
                B[k, i] += b
                lo = 0 if chol else i
                for j in range(lo, i + 1):
                    acc = 0.0
                    for r in range(m):
                        acc += ry[r] * Y[k, j, r]
                    M[k, i, j] += acc
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
def _mean_gradient(W, B, chol):  # pragma: no cover - compiled
    """dL/dmu_k = W^T B_k (the likelihood's part; B from :func:`_likelihood_pass`)."""
    K, D = B.shape
    Kc = W.shape[0]
    g = np.zeros((K, D))
    for k in range(K):
        c = 0 if Kc == 1 else k
        for j in range(D):
            if chol:
                acc = 0.0
                for i in range(j, D):
                    acc += W[c, i, j] * B[k, i]
                g[k, j] = acc
            else:
                g[k, j] = W[c, j, j] * B[k, j]
    return g


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _has_nan(Z):  # pragma: no cover - compiled
    """Whether any entry of ``Z`` is NaN (a missing entry); stops at the first."""
    N, D = Z.shape
    for n in range(N):
        for d in range(D):
            if np.isnan(Z[n, d]):
                return True
    return False


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _same_pattern(Z, a, b):  # pragma: no cover - compiled
    """Whether rows ``a`` and ``b`` of ``Z`` miss the same entries."""
    for d in range(Z.shape[1]):
        if np.isnan(Z[a, d]) != np.isnan(Z[b, d]):
            return False
    return True


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _covariances(C, sd, reg):  # pragma: no cover - compiled
    """``Sigma_c = diag(sd) C C^T diag(sd) + diag(reg)``, both triangles."""
    Kc, D = sd.shape
    cov = np.zeros((Kc, D, D))
    for c in range(Kc):
        for i in range(D):
            for j in range(i + 1):
                acc = 0.0
                for m in range(j + 1):
                    acc += C[c, i, m] * C[c, j, m]
                cov[c, i, j] = sd[c, i] * sd[c, j] * acc
                cov[c, j, i] = cov[c, i, j]
            cov[c, i, i] += reg[i]
    return cov


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _block_inverse_cholesky(cov, obs, m, L, W):  # pragma: no cover - compiled
    """``W[:m, :m] = L^-1`` for ``L L^T = cov[obs, obs]``; returns ``(log det L, ok)``.

    ``L`` is scratch space; ``ok`` is False when the block is not positive definite.
    """
    for i in range(m):
        for j in range(i + 1):
            acc = cov[obs[i], obs[j]]
            for t in range(j):
                acc -= L[i, t] * L[j, t]
            if i == j:
                if not acc > 0.0:
                    return 0.0, False
                L[i, i] = np.sqrt(acc)
            else:
                L[i, j] = acc / L[j, j]
    log_det = 0.0
    for j in range(m):
        W[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, m):
            acc = 0.0
            for t in range(j, i):
                acc += L[i, t] * W[t, j]
            W[i, j] = -acc / L[i, i]
        log_det += np.log(L[j, j])
    return log_det, True


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _masked_pass(Z, mu, log_w, cov):  # pragma: no cover - compiled
    """Observed-data log-likelihood and its gradients, rows with NaN marginalised.

    Walks the rows in runs of one missingness pattern; for each run, factors
    every stored ``Sigma_c`` restricted to the observed coordinates ``O``,
    accumulates the responsibility-weighted statistics of ``y = W_O (z_O -
    mu_kO)``, and at the end of the run adds ``W_O^T B`` to ``d/dmu_kO`` and
    ``W_O^T (M - N I) W_O / 2`` to the block ``O, O`` of ``d/dSigma_c``.

    Returns ``loglik``, ``Nk`` (sum of responsibilities), ``g_mu`` (K, D),
    ``G`` (Kc, D, D: ``dL/dSigma_c``, both triangles) and ``ok`` (False when a
    block is not positive definite).
    """
    N, D = Z.shape
    K = mu.shape[0]
    Kc = cov.shape[0]
    shared = Kc == 1 and K > 1
    loglik = 0.0
    Nk = np.zeros(K)
    g_mu = np.zeros((K, D))
    G = np.zeros((Kc, D, D))
    obs = np.zeros(D, dtype=np.int64)
    L = np.zeros((D, D))
    W = np.zeros((Kc, D, D))
    log_det = np.zeros(Kc)
    Np = np.zeros(K)
    Bp = np.zeros((K, D))
    Mp = np.zeros((K, D, D))
    T = np.zeros((Kc, D, D))
    TW = np.zeros((D, D))
    y = np.zeros((K, D))
    u = np.zeros((K, D))
    lc = np.empty(K)
    start = 0
    while start < N:
        stop = start + 1
        while stop < N and _same_pattern(Z, start, stop):
            stop += 1
        m = 0
        for d in range(D):
            if not np.isnan(Z[start, d]):
                obs[m] = d
                m += 1
        for c in range(Kc):
            log_det[c], ok = _block_inverse_cholesky(cov[c], obs, m, L, W[c])
            if not ok:
                return loglik, Nk, g_mu, G, False
        Np[:] = 0.0
        Bp[:] = 0.0
        Mp[:] = 0.0
        for k in range(K):  # the observed part of the means, once per run
            for i in range(m):
                u[k, i] = mu[k, obs[i]]
        for n in range(start, stop):
            for k in range(K):
                c = 0 if shared else k
                sq = 0.0
                for i in range(m):
                    acc = 0.0
                    for j in range(i + 1):
                        acc += W[c, i, j] * (Z[n, obs[j]] - u[k, j])
                    y[k, i] = acc
                    sq += acc * acc
                lc[k] = log_w[k] - 0.5 * sq - log_det[c] - m * _HALF_LOG_2PI
            lse = _log_sum_exp(lc)
            loglik += lse
            for k in range(K):
                r = np.exp(lc[k] - lse)
                Np[k] += r
                for i in range(m):
                    ry = r * y[k, i]
                    Bp[k, i] += ry
                    for j in range(i + 1):
                        Mp[k, i, j] += ry * y[k, j]
        T[:] = 0.0
        for k in range(K):  # the run's statistics -> gradients in the full coordinates
            c = 0 if shared else k
            Nk[k] += Np[k]
            for j in range(m):
                acc = 0.0
                for i in range(j, m):
                    acc += W[c, i, j] * Bp[k, i]
                g_mu[k, obs[j]] += acc
            for i in range(m):
                for j in range(i + 1):
                    T[c, i, j] += Mp[k, i, j] - (Np[k] if i == j else 0.0)
                    T[c, j, i] = T[c, i, j]
        for c in range(Kc):  # G[c][O, O] += W^T T W / 2 (W lower)
            for i in range(m):
                for b in range(m):
                    acc = 0.0
                    for j in range(b, m):
                        acc += T[c, i, j] * W[c, j, b]
                    TW[i, b] = acc
            for a in range(m):
                for b in range(m):
                    acc = 0.0
                    for i in range(a, m):
                        acc += W[c, i, a] * TW[i, b]
                    G[c, obs[a], obs[b]] += 0.5 * acc
        start = stop
    return loglik, Nk, g_mu, G, True


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _masked_diagonal_pass(Z, mu, log_w, var):  # pragma: no cover - compiled
    """:func:`_masked_pass` for diagonal covariances ``var[c, d]``: NaN entries skipped.

    Returns ``loglik``, ``Nk``, ``g_mu`` (K, D) and ``g_var`` (K, D), the
    derivative with respect to component ``k``'s variance of feature ``d``.
    """
    N, D = Z.shape
    K = mu.shape[0]
    shared = var.shape[0] == 1 and K > 1
    loglik = 0.0
    Nk = np.zeros(K)
    g_mu = np.zeros((K, D))
    g_var = np.zeros((K, D))
    y = np.zeros((K, D))
    lc = np.empty(K)
    for n in range(N):
        for k in range(K):
            c = 0 if shared else k
            acc = 0.0
            for d in range(D):
                if np.isnan(Z[n, d]):
                    y[k, d] = 0.0
                    continue
                y[k, d] = (Z[n, d] - mu[k, d]) / np.sqrt(var[c, d])
                acc += y[k, d] * y[k, d] + np.log(var[c, d]) + 2.0 * _HALF_LOG_2PI
            lc[k] = log_w[k] - 0.5 * acc
        lse = _log_sum_exp(lc)
        loglik += lse
        for k in range(K):
            c = 0 if shared else k
            r = np.exp(lc[k] - lse)
            Nk[k] += r
            for d in range(D):
                if np.isnan(Z[n, d]):
                    continue
                s = 1.0 / np.sqrt(var[c, d])
                g_mu[k, d] += r * y[k, d] * s
                g_var[k, d] += 0.5 * r * (y[k, d] * y[k, d] - 1.0) * s * s
    return loglik, Nk, g_mu, g_var


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _digamma(x):  # pragma: no cover - compiled
    """Digamma function for ``x > 0``: recurrence up to 10, then the asymptotic series.

    Truncation error below 1e-13 (next term ``691 / (32760 x^12)`` at ``x >= 10``).
    """
    acc = 0.0
    while x < 10.0:
        acc -= 1.0 / x
        x += 1.0
    f = 1.0 / (x * x)
    series = f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))
    return acc + np.log(x) - 0.5 / x - series


@nb.njit(cache=True, nogil=True, error_model="numpy")
def log_density_grad(theta, grad, Z, reg, alpha, loc, mscale, sd_sigma, beta_a, const,
                     n_components, cov_code):  # pragma: no cover - compiled
    """Write the gradient into ``grad`` and return the log-density (``-inf`` if not PD).

    ``alpha`` is the Dirichlet concentration, or, when its first entry is
    negative, the marker of a sampled symmetric concentration: ``alpha[0] =
    -shape``, ``alpha[1] = rate`` of ``alpha ~ Gamma(shape, rate)``, whose log
    is then ``theta[0]`` (the other parameters follow it).  The terms that
    depend on it, with ``a = exp(theta[0])``: ``lgamma(K a) - K lgamma(a)``
    (the Dirichlet normaliser), ``a sum_k log w_k`` (the Dirichlet kernel with
    the simplex log-Jacobian), ``(shape - 1) log a - rate a`` (the Gamma) and
    ``log a`` (the log-Jacobian); ``const`` holds the rest.  Other arguments as
    :func:`_fixed_concentration`.
    """
    K = n_components
    if K == 1 or alpha[0] >= 0.0:
        return _fixed_concentration(theta, grad, Z, reg, alpha, loc, mscale, sd_sigma, beta_a,
                                    const, K, cov_code)
    shape, rate = -alpha[0], alpha[1]
    log_a = theta[0]
    a = np.exp(log_a)
    value = _fixed_concentration(theta[1:], grad[1:], Z, reg, np.full(K, a), loc, mscale,
                                 sd_sigma, beta_a, const, K, cov_code)
    grad[0] = 0.0
    if value == -np.inf:
        return value
    sum_log_w = np.sum(_log_weights(theta[1:], K))  # its a * sum is in ``value`` already
    value += math.lgamma(K * a) - K * math.lgamma(a) + shape * log_a - rate * a
    grad[0] = a * (K * _digamma(K * a) - K * _digamma(a) + sum_log_w - rate) + shape
    return value


@nb.njit(cache=True, nogil=True, error_model="numpy")
def _fixed_concentration(theta, grad, Z, reg, alpha, loc, mscale, sd_sigma, beta_a, const,
                         n_components, cov_code):  # pragma: no cover - compiled
    """The log-density and gradient for a fixed Dirichlet concentration ``alpha``.

    Parameters
    ----------
    theta : float64[:]
        Flat unconstrained point: ``w_simplex__`` (K-1, when K > 1), ``mu_std``
        (K*D), ``sd_std_log__`` (K, D or K*D), ``cpc_u_logodds__`` (full/tied, D > 1).
    grad : float64[:]
        Output, same length as ``theta``.
    Z : float64[:, :]
        Standardized data; NaN marks a missing entry (marginalised).  Rows of
        one missingness pattern should be adjacent (:func:`pattern_sorted`):
        any order gives the same value, but every run of a pattern factors its
        covariance blocks again.
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
    missing = _has_nan(Z)
    if chol:
        C, SR, Zm, Q = _correlation_factors(theta, off_cpc, Kc, D)
        if missing:
            value, Nk, g_mu, G, ok = _masked_pass(Z, mu, log_w, _covariances(C, sd, reg))
            if not ok:
                return -np.inf
        else:
            W, log_det, ok = _inverse_cholesky(C, sd, reg)
            if not ok:
                return -np.inf
            value, Nk, B, M = _likelihood_pass(Z, mu, log_w, W, log_det, True)
            g_mu = _mean_gradient(W, B, True)
            G = _sigma_gradient(M, Nk, W)
    else:  # diagonal covariances
        var = np.empty((Kc, D))
        for c in range(Kc):
            for d in range(D):
                var[c, d] = sd[c, d] * sd[c, d] + reg[d]
        if missing:
            value, Nk, g_mu, g_var = _masked_diagonal_pass(Z, mu, log_w, var)
        else:  # W = diag(1 / sqrt(var))
            W = np.zeros((Kc, D, D))
            log_det = np.zeros(Kc)
            for c in range(Kc):
                for d in range(D):
                    W[c, d, d] = 1.0 / np.sqrt(var[c, d])
                    log_det[c] += 0.5 * np.log(var[c, d])
            value, Nk, B, M = _likelihood_pass(Z, mu, log_w, W, log_det, False)
            g_mu = _mean_gradient(W, B, False)
            g_var = np.empty((K, D))  # d/dvar = (M_dd - N_k) / (2 var)
            for k in range(K):
                for d in range(D):
                    g_var[k, d] = 0.5 * (M[k, d, d] - Nk[k]) * W[k, d, d] ** 2
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

    # means: Normal prior + likelihood
    for k in range(K):
        for j in range(D):
            dev = (mu[k, j] - loc[j]) / mscale[j]
            value -= 0.5 * dev * dev
            grad[off_mu + k * D + j] = g_mu[k, j] - dev / mscale[j]

    # standard deviations: HalfNormal prior + log-Jacobian
    for s in range(n_sd):
        ls = theta[off_sd + s]
        ratio = np.exp(ls) / sd_sigma[s]
        value += ls - 0.5 * ratio * ratio
        grad[off_sd + s] = 1.0 - ratio * ratio

    if not chol:  # d var / d log sd = 2 sd^2
        for k in range(K):
            for d in range(D):
                g = 2.0 * g_var[k, d] * sd[k, d] ** 2
                if cov_code == SPHERICAL:
                    grad[off_sd + k] += g
                elif cov_code == TIED:
                    grad[off_sd + d] += g
                else:
                    grad[off_sd + k * D + d] += g
        return value

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


def pattern_sorted(Z: np.ndarray) -> np.ndarray:
    """``Z`` with the rows of each missingness pattern together (the kernel's row order).

    The log-density is a sum over rows, so the order changes nothing but the
    number of runs :func:`log_density_grad` factors covariance blocks for (one
    per pattern here).  Complete data are returned as they are.

    Parameters
    ----------
    Z : ndarray of shape (n_samples, n_features)
        Standardized data, NaN where an entry is missing.

    Returns
    -------
    ndarray of shape (n_samples, n_features)
        C-contiguous float64; the rows of pattern ``p`` of
        :func:`bayesgmm.em_missing.group_patterns` before those of ``p + 1``.

    Examples
    --------
    >>> pattern_sorted(np.array([[1.0, np.nan], [2.0, 3.0], [4.0, np.nan]])).tolist()
    [[1.0, nan], [4.0, nan], [2.0, 3.0]]
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    if Z.ndim != 2 or not np.isnan(Z).any():
        return Z
    from bayesgmm.em_missing import group_patterns

    order = np.argsort(group_patterns(Z).pattern, kind="stable")
    return np.ascontiguousarray(Z[order])


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
