"""EM for Gaussian mixtures on data with missing entries (NaN), missing at random.

Ghahramani and Jordan (1994); McLachlan and Krishnan, *The EM Algorithm and
Extensions*, ch. 2. Rows are grouped by their missingness pattern (which
entries are observed). For a pattern with observed coordinates ``O`` and
missing ones ``M``, and every component ``k`` with precision ``Lambda_k =
Sigma_k^-1``:

- the observed part has the marginal density ``N(x_O | mu_kO, Sigma_kOO)``;
- the missing part, given the observed one, is Gaussian with covariance
  ``Lambda_kMM^-1`` and mean ``mu_kM - Lambda_kMM^-1 Lambda_kMO (x_O - mu_kO)``;
- with ``x_M`` replaced by that mean, the full quadratic form
  ``(x - mu_k)' Lambda_k (x - mu_k)`` equals the marginal one of ``x_O``, and
  ``log det Sigma_kOO = log det Sigma_k + log det Lambda_kMM``.

So one ``|M| x |M|`` Cholesky factor per pattern and component gives the
E-step (the observed-data log-likelihood and responsibilities) and the
conditional moments; the M-step uses the completed rows' weighted second
moments plus the conditional covariances, projected on the covariance
structure by the same M-step as complete data (:class:`bayesgmm.em._Stats`).
Each iteration cannot lower the observed-data log-likelihood, which is what
is reported and what AIC, BIC and ICL use.

EM runs in working units, centred and scaled by the observed values of each
column; the log-likelihood is mapped back row by row (a row's Jacobian only
counts its observed columns).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import logsumexp

from bayesgmm.em import (
    _FAILED_CHOLESKY,
    LOG_2PI,
    EMInfo,
    EMState,
    _Frame,
    _Stats,
)

__all__ = [
    "Patterns",
    "conditional_mean",
    "e_step",
    "frame_of",
    "group_patterns",
    "has_missing",
    "run_em",
    "weighted_log_prob",
]


def has_missing(X: np.ndarray) -> bool:
    """Whether ``X`` holds any NaN."""
    return bool(np.isnan(X).any())


class Patterns(NamedTuple):
    """Rows grouped by missingness pattern.

    ``observed[p]`` is the boolean mask of the observed columns of pattern
    ``p`` and ``rows[p]`` the indices of its rows; ``log_jacobian[n]`` is the
    sum of ``log scale_j`` over the observed columns of row ``n``.
    """

    observed: np.ndarray
    rows: list[np.ndarray]


def group_patterns(X: np.ndarray) -> Patterns:
    """Group the rows of ``X`` by which entries are observed.

    Examples
    --------
    >>> p = group_patterns(np.array([[1.0, np.nan], [2.0, 3.0], [4.0, np.nan]]))
    >>> p.observed.tolist(), [r.tolist() for r in p.rows]
    ([[True, False], [True, True]], [[0, 2], [1]])
    """
    observed = ~np.isnan(X)
    masks, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(masks.shape[0] + 1))
    rows = [order[bounds[p]:bounds[p + 1]] for p in range(masks.shape[0])]
    return Patterns(masks, rows)


def frame_of(X: np.ndarray, covariance_type: str) -> _Frame:
    """Working units from the observed values of every column (as :class:`em._Frame`)."""
    seen = ~np.isnan(X).all(axis=0)
    center = np.zeros(X.shape[1])
    sd = np.ones(X.shape[1])
    center[seen] = np.nanmean(X[:, seen], axis=0)
    sd[seen] = np.nanstd(X[:, seen], axis=0)
    if covariance_type == "spherical":
        sd = np.full_like(sd, np.sqrt(np.mean(sd**2)))
    sd[~(sd > 0)] = 1.0
    return _Frame(center, sd)


class _Moments(NamedTuple):
    """Per-pattern E-step output for every component (working units)."""

    log_prob: np.ndarray  # (n_p, K): log w_k + log N(x_O | mu_kO, Sigma_kOO)
    completed: np.ndarray  # (K, n_p, D): x with x_M = E[x_M | x_O, k]
    cond_cov: np.ndarray | None  # (K, |M|, |M|): Cov[x_M | x_O, k]


class _Model(NamedTuple):
    """The mixture in working units, in the form every pattern reads."""

    log_weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    precisions: np.ndarray  # (K, D, D)
    log_det_cov: np.ndarray  # (K,)

    @classmethod
    def of(cls, state: EMState) -> _Model:
        k, d = state.means.shape
        pc = state.precisions_cholesky
        kind = state.covariance_type
        if kind == "full":
            u = pc
        elif kind == "tied":
            u = np.broadcast_to(pc, (k, d, d))
        elif kind == "diag":
            u = pc[:, :, None] * np.eye(d)[None]
        else:
            u = pc[:, None, None] * np.eye(d)[None]
        precisions = u @ np.swapaxes(u, 1, 2)
        log_det = -2.0 * np.log(np.abs(np.diagonal(u, axis1=1, axis2=2))).sum(axis=1)
        with np.errstate(divide="ignore"):
            log_w = np.log(state.weights)
        return cls(log_w, state.means, precisions, log_det)


def _pattern_moments(Z: np.ndarray, observed: np.ndarray, model: _Model) -> _Moments:
    """E-step quantities of the rows ``Z`` (working units) that share one pattern."""
    obs = np.flatnonzero(observed)
    mis = np.flatnonzero(~observed)
    k = model.means.shape[0]
    n, d = Z.shape
    diff = Z[:, obs][None] - model.means[:, None, obs]  # (K, n_p, |O|)
    lam_oo = model.precisions[:, obs[:, None], obs[None, :]]
    quad = np.einsum("kni,kij,knj->kn", diff, lam_oo, diff)
    log_det = model.log_det_cov
    if mis.size == 0:
        completed = np.broadcast_to(Z[None], (k, n, d))
        cond_cov = None
    else:
        lam_mm = model.precisions[:, mis[:, None], mis[None, :]]  # (K, |M|, |M|)
        lam_mo = model.precisions[:, mis[:, None], obs[None, :]]
        t = lam_mo @ np.swapaxes(diff, 1, 2)  # (K, |M|, n_p)
        cond_cov = np.linalg.inv(lam_mm)  # Cov[x_M | x_O, k]
        shift = cond_cov @ t  # Lambda_MM^-1 Lambda_MO (x_O - mu_O)
        quad = quad - np.einsum("kmn,kmn->kn", t, shift)
        log_det = log_det + np.linalg.slogdet(lam_mm)[1]
        completed = np.empty((k, n, d))
        completed[:, :, obs] = Z[:, obs][None]
        completed[:, :, mis] = model.means[:, None, mis] - np.swapaxes(shift, 1, 2)
    log_prob = model.log_weights[None, :] - 0.5 * (obs.size * LOG_2PI + log_det[None, :]
                                                   + quad.T)
    return _Moments(log_prob, completed, cond_cov)


def _passes(X: np.ndarray, frame: _Frame, patterns: Patterns, model: _Model):
    """Yield ``(rows, observed mask, moments)`` for every pattern."""
    for observed, rows in zip(patterns.observed, patterns.rows, strict=True):
        Z = (X[rows] - frame.center) / frame.scale
        yield rows, observed, _pattern_moments(Z, observed, model)


def _row_jacobian(patterns: Patterns, frame: _Frame, n_samples: int) -> np.ndarray:
    jac = np.empty(n_samples)
    log_scale = np.log(frame.scale)
    for observed, rows in zip(patterns.observed, patterns.rows, strict=True):
        jac[rows] = log_scale[observed].sum()
    return jac


def weighted_log_prob(X: np.ndarray, state: EMState) -> np.ndarray:
    """``log w_k + log N(x_nO | mu_kO, Sigma_kOO)`` of every row's observed part.

    The incomplete-data counterpart of :func:`bayesgmm.em.weighted_log_prob`
    (equal to it on complete rows). A row with no observed entry gets
    ``log w_k``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState
        Mixture parameters in data units.

    Returns
    -------
    ndarray of shape (n_samples, n_components)

    Examples
    --------
    >>> state = EMState(np.array([1.0]), np.zeros((1, 2)), np.eye(2)[None] * 4.0,
    ...                 np.eye(2)[None] / 2.0, "full")
    >>> from scipy import stats
    >>> bool(np.isclose(weighted_log_prob(np.array([[1.0, np.nan]]), state)[0, 0],
    ...                 stats.norm(0, 2).logpdf(1.0)))
    True
    """
    frame = frame_of(X, state.covariance_type)
    patterns = group_patterns(X)
    model = _Model.of(frame.to_work(state))
    out = np.empty((X.shape[0], state.weights.shape[0]))
    for rows, _, moments in _passes(X, frame, patterns, model):
        out[rows] = moments.log_prob
    return out - _row_jacobian(patterns, frame, X.shape[0])[:, None]


def e_step(X: np.ndarray, state: EMState) -> tuple[np.ndarray, np.ndarray]:
    """Observed-data log-likelihood of every row and the responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState
        Mixture parameters in data units.

    Returns
    -------
    log_lik : ndarray of shape (n_samples,)
    resp : ndarray of shape (n_samples, n_components)
    """
    weighted = weighted_log_prob(X, state)
    rows = logsumexp(weighted, axis=1)
    return rows, np.exp(weighted - rows[:, None])


def conditional_mean(X: np.ndarray, state: EMState) -> np.ndarray:
    """``X`` with every missing entry replaced by ``E[x_M | x_O]`` under the mixture.

    The conditional expectation is the mixture of the components'
    conditional means, weighted by the responsibilities given the observed
    entries.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry.
    state : EMState
        Mixture parameters in data units.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Examples
    --------
    >>> cov = np.array([[[1.0, 0.8], [0.8, 1.0]]])
    >>> state = EMState(np.array([1.0]), np.zeros((1, 2)), cov,
    ...                 np.linalg.cholesky(np.linalg.inv(cov)), "full")
    >>> conditional_mean(np.array([[1.0, np.nan]]), state).round(6).tolist()  # 0.8 * 1
    [[1.0, 0.8]]
    """
    frame = frame_of(X, state.covariance_type)
    patterns = group_patterns(X)
    model = _Model.of(frame.to_work(state))
    out = np.array(X, dtype=float, copy=True)
    for rows, observed, moments in _passes(X, frame, patterns, model):
        if observed.all():
            continue
        resp = np.exp(moments.log_prob - logsumexp(moments.log_prob, axis=1, keepdims=True))
        mis = np.flatnonzero(~observed)
        z = np.einsum("nk,knm->nm", resp, moments.completed[:, :, mis])
        out[rows[:, None], mis[None, :]] = z * frame.scale[mis] + frame.center[mis]
    return out


def run_em(
    X: np.ndarray,
    state: EMState,
    *,
    reg_covar: float,
    tol: float,
    max_iter: int,
    callback=None,
) -> tuple[EMState, EMInfo]:
    """Iterate EM on incomplete data from ``state`` (see :func:`bayesgmm.em.run_em`).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data; NaN marks a missing entry (every row needs one observed entry).
    state : EMState
        Starting parameters, data units.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance.
    tol : float
        Convergence threshold on the gain in mean observed-data
        log-likelihood per sample.
    max_iter : int
        Maximum number of iterations.
    callback : callable, optional
        Called as ``callback(iteration, mean_log_likelihood)`` after each pass.

    Returns
    -------
    state : EMState
    info : EMInfo
        ``lower_bound`` and ``trace`` are mean observed-data log-likelihoods.
    """
    n = X.shape[0]
    kind = state.covariance_type
    frame = frame_of(X, kind)
    patterns = group_patterns(X)
    log_jacobian = float(_row_jacobian(patterns, frame, n).sum()) / n
    reg = frame.reg(reg_covar)
    work = frame.to_work(state)
    trace: list[float] = []
    converged = False
    lower_bound = -np.inf
    for iteration in range(1, max_iter + 1):
        total, stats = _accumulate(X, frame, patterns, work)
        try:
            work = stats.m_step(reg)
        except ValueError:
            raise ValueError(_FAILED_CHOLESKY.format(reg_covar=reg_covar)) from None
        current = total / n - log_jacobian
        trace.append(current)
        if callback is not None:
            callback(iteration, current)
        change, lower_bound = current - lower_bound, current
        if abs(change) < tol:
            converged = True
            break
    return frame.to_data(work), EMInfo(converged, len(trace), lower_bound, np.asarray(trace))


def _accumulate(X: np.ndarray, frame: _Frame, patterns: Patterns,
                work: EMState) -> tuple[float, _Stats]:
    """One E-step: total working-unit log-likelihood and the expected sufficient statistics.

    Second moments are taken about the current means (the ``centers`` form of
    :class:`bayesgmm.em._Stats`), which keeps them exact for tight components.
    """
    k, d = work.means.shape
    kind = work.covariance_type
    model = _Model.of(work)
    centers = work.means
    stats = _Stats(k, d, kind, centers=centers)
    full = np.zeros((k, d, d))
    total = 0.0
    for _, observed, moments in _passes(X, frame, patterns, model):
        rows_ll = logsumexp(moments.log_prob, axis=1)
        total += float(rows_ll.sum())
        resp = np.exp(moments.log_prob - rows_ll[:, None]).T  # (K, n_p)
        diff = moments.completed - centers[:, None, :]  # (K, n_p, D)
        weighted = diff * resp[:, :, None]
        nk = resp.sum(axis=1)
        stats.nk += nk
        stats.sx += weighted.sum(axis=1)
        full += np.swapaxes(weighted, 1, 2) @ diff
        if moments.cond_cov is not None:
            mis = np.flatnonzero(~observed)
            full[:, mis[:, None], mis[None, :]] += nk[:, None, None] * moments.cond_cov
    if kind == "full":
        stats.sxx = full
    elif kind == "tied":
        stats.sxx = full.sum(axis=0)
    else:
        stats.sxx = np.diagonal(full, axis1=1, axis2=2).copy()
    return total, stats
