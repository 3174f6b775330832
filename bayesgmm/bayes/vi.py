"""ADVI on the fast log-density: mean-field and full-rank Gaussian approximations.

Automatic differentiation variational inference (Kucukelbir et al. 2017)
fits a Gaussian ``q`` in the model's unconstrained space by maximising the
evidence lower bound ``ELBO = E_q[log p(x)] + H[q]``.  Its stochastic
gradient needs only the log-density gradient at draws from ``q``
(reparameterisation ``x = m + L eps``, ``eps ~ N(0, I)``), which
:class:`~bayesgmm.bayes.density.MixtureDensity` gives without any PyTensor
graph; the entropy ``H[q] = sum log diag(L) + const`` is differentiated
exactly.  The optimiser is Adam with PyMC's defaults (``pm.adam``), so with
the same learning rate and steps the fit reaches the optimum ``pm.fit`` does
(checked in the test suite).  The returned approximation is the average of
the iterates over the last convergence window (Polyak-Ruppert averaging):
with a constant step size Adam's last iterate keeps jittering around the
optimum, by about 0.05 data sd on Old Faithful at the default rate.

Parameterisation, as PyMC's: mean-field ``sigma = softplus(rho)``;
full-rank ``L`` lower triangular with ``diag(L) = softplus(raw diagonal)``.

This module imports NumPy only (no PyMC), like the kernel it calls.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GaussianApproximation", "fit_advi", "importance_pareto_k", "window_converged"]

_LOG_2PI = np.log(2.0 * np.pi)
VI_METHODS = ("advi", "fullrank_advi")


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -x))


def _inverse_softplus(y: float) -> float:
    return float(np.log(np.expm1(y)))


def _full_factor(raw: np.ndarray, n: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Lower-triangular ``L`` from its raw entries (row by row), the diagonal through softplus."""
    L = np.zeros((n, n))
    L[rows, cols] = raw
    diag = np.arange(n)
    L[diag, diag] = _softplus(L[diag, diag])
    return L


@dataclass
class GaussianApproximation:
    """A fitted Gaussian ``q(x) = N(mean, L L^T)`` over the unconstrained vector.

    Attributes
    ----------
    method : {"advi", "fullrank_advi"}
        Mean-field (diagonal ``L``) or full-rank.
    mean : ndarray of shape (n_dim,)
        Mean of ``q``.
    chol : ndarray of shape (n_dim, n_dim)
        Lower-triangular Cholesky factor of the covariance of ``q``
        (diagonal for mean-field).
    loss : ndarray of shape (n_steps,)
        Negative ELBO estimate at every optimisation step.
    converged : bool
        Whether :func:`window_converged` stopped the optimisation before
        ``max_steps``.
    max_steps : int
        The step budget.
    """

    method: str
    mean: np.ndarray
    chol: np.ndarray
    loss: np.ndarray = field(repr=False)
    converged: bool
    max_steps: int

    @property
    def n_dim(self) -> int:
        """Length of the unconstrained vector."""
        return int(self.mean.size)

    @property
    def n_steps(self) -> int:
        """Optimisation steps taken."""
        return int(self.loss.size)

    def sample(self, draws: int, rng: np.random.Generator) -> np.ndarray:
        """Draws from ``q``.

        Parameters
        ----------
        draws : int
            Number of draws.
        rng : numpy.random.Generator
            Random source.

        Returns
        -------
        ndarray of shape (draws, n_dim)
        """
        eps = rng.standard_normal((draws, self.n_dim))
        return self.mean + eps @ self.chol.T

    def log_density(self, x: np.ndarray) -> np.ndarray:
        """``log q(x)`` for vectors of the unconstrained space.

        Parameters
        ----------
        x : ndarray of shape (..., n_dim)

        Returns
        -------
        ndarray of shape (...)
        """
        from scipy.linalg import solve_triangular

        flat = np.reshape(x, (-1, self.n_dim)) - self.mean
        eps = solve_triangular(self.chol, flat.T, lower=True).T
        log_det = np.sum(np.log(np.diag(self.chol)))
        values = -0.5 * np.sum(eps**2, axis=1) - log_det - 0.5 * self.n_dim * _LOG_2PI
        return values.reshape(np.shape(x)[:-1])


def window_converged(losses: np.ndarray, window: int, tolerance: float) -> bool:
    """Whether the mean loss stopped improving between the last two windows.

    Single-draw ELBO estimates are noisy, so parameter changes step to step
    say little; instead the mean loss of the last ``window`` steps is
    compared with the window before.  Converged when the gain is below
    ``tolerance`` times the loss (at least 1), or below two standard errors
    of the difference (no detectable progress).

    Parameters
    ----------
    losses : ndarray
        Loss at every step so far.
    window : int
        Steps per window.
    tolerance : float
        Relative gain that counts as converged.

    Returns
    -------
    bool

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> window_converged(100 + rng.normal(size=2000), 1000, 1e-3)
    True
    >>> window_converged(np.linspace(200, 100, 2000), 1000, 1e-3)
    False
    """
    if len(losses) < 2 * window:
        return False
    last = np.asarray(losses[-window:], dtype=float)
    before = np.asarray(losses[-2 * window:-window], dtype=float)
    last, before = last[np.isfinite(last)], before[np.isfinite(before)]
    if min(last.size, before.size) < window // 2:  # too many rejected draws to judge
        return False
    gain = float(before.mean() - last.mean())
    noise = 2.0 * float(np.sqrt(last.var() / last.size + before.var() / before.size))
    return gain <= max(tolerance * max(abs(float(last.mean())), 1.0), noise)


class _Adam:
    """Adam (Kingma and Ba 2015) with PyMC's ``pm.adam`` defaults, for ascent."""

    def __init__(self, size: int, learning_rate: float, beta1: float = 0.9,
                 beta2: float = 0.999, epsilon: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta1, beta2, epsilon
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0

    def step(self, params: np.ndarray, grad: np.ndarray) -> None:
        self.t += 1
        self.m *= self.b1
        self.m += (1.0 - self.b1) * grad
        self.v *= self.b2
        self.v += (1.0 - self.b2) * grad * grad
        rate = self.lr * np.sqrt(1.0 - self.b2**self.t) / (1.0 - self.b1**self.t)
        params += rate * self.m / (np.sqrt(self.v) + self.eps)


def fit_advi(
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]],
    start: np.ndarray,
    *,
    method: str = "advi",
    max_steps: int = 20_000,
    learning_rate: float = 0.01,
    init_std: float = 0.1,
    tolerance: float = 1e-3,
    window: int = 1000,
    rng: np.random.Generator | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> GaussianApproximation:
    """Fit a Gaussian approximation by stochastic gradient ascent on the ELBO.

    Parameters
    ----------
    value_and_grad : callable
        ``x -> (log p(x), gradient)`` on the unconstrained space, e.g.
        :meth:`bayesgmm.bayes.density.MixtureDensity.value_and_grad`.
    start : ndarray of shape (n_dim,)
        Initial mean of ``q`` (e.g. the EM solution, unconstrained).
    method : {"advi", "fullrank_advi"}, default="advi"
        Mean-field or full-rank Gaussian.
    max_steps : int, default=20000
        Step budget.
    learning_rate : float, default=0.01
        Adam's learning rate.
    init_std : float, default=0.1
        Initial standard deviation of ``q`` in every direction.
    tolerance : float, default=1e-3
        See :func:`window_converged`.
    window : int, default=1000
        Steps per convergence window (checked every ``window`` steps).
    rng : numpy.random.Generator, optional
        Random source of the Monte Carlo draws.
    progress : callable, optional
        Called as ``progress(step, loss)`` every 100 steps.

    Returns
    -------
    GaussianApproximation

    Raises
    ------
    ValueError
        For an unknown ``method`` or a non-finite starting log-density.

    Examples
    --------
    A Gaussian target is recovered exactly by the full-rank family:

    >>> cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    >>> prec = np.linalg.inv(cov)
    >>> target = lambda x: (-0.5 * x @ prec @ x, -prec @ x)
    >>> q = fit_advi(target, np.zeros(2), method="fullrank_advi", max_steps=20_000,
    ...              rng=np.random.default_rng(0))
    >>> bool(np.allclose(q.chol @ q.chol.T, cov, atol=0.1))
    True
    """
    if method not in VI_METHODS:
        raise ValueError(f"method must be one of {VI_METHODS}; got {method!r}.")
    rng = np.random.default_rng() if rng is None else rng
    mean = np.array(start, dtype=float)
    n = mean.size
    value, _ = value_and_grad(mean)
    if not np.isfinite(value):
        raise ValueError("ADVI: the log-density is not finite at the starting point.")
    full = method == "fullrank_advi"
    if full:
        rows, cols = np.tril_indices(n)
        on_diag = rows == cols
        raw_l = np.where(on_diag, _inverse_softplus(init_std), 0.0)
        params = np.concatenate([mean, raw_l])
    else:
        params = np.concatenate([mean, np.full(n, _inverse_softplus(init_std))])
    adam = _Adam(params.size, learning_rate)
    grad = np.empty(params.size)
    losses = np.empty(max_steps)
    const = 0.5 * n * (1.0 + _LOG_2PI)  # entropy of N(0, I) in n dimensions
    converged = False
    step = 0
    window_sum = np.zeros(params.size)  # Polyak-Ruppert average over each window
    window_mean = None
    while step < max_steps:
        m = params[:n]
        eps = rng.standard_normal(n)
        if full:
            L = _full_factor(params[n:], n, rows, cols)
            d = params[n:][on_diag]  # the raw diagonal, row by row
            x = m + L @ eps
            log_diag = np.log(np.diag(L))
        else:
            sigma = _softplus(params[n:])
            x = m + sigma * eps
            log_diag = np.log(sigma)
        logp, g = value_and_grad(x)
        if not np.isfinite(logp):  # a wild draw: skip the step, keep the trace honest
            losses[step] = np.nan
            step += 1
            continue
        grad[:n] = g
        if full:
            gl = np.outer(g, eps)[rows, cols]
            gl[on_diag] = (gl[on_diag] + 1.0 / _softplus(d)) * _sigmoid(d)
            grad[n:] = gl
        else:
            grad[n:] = (g * eps + 1.0 / sigma) * _sigmoid(params[n:])
        adam.step(params, grad)
        window_sum += params
        losses[step] = -(logp + log_diag.sum() + const)
        step += 1
        if progress is not None and step % 100 == 0:
            progress(step, float(losses[step - 1]))
        if step % window == 0:
            window_mean, window_sum = window_sum / window, np.zeros(params.size)
            if window_converged(losses[:step], window, tolerance):
                converged = True
                break
    if window_mean is not None and step % window == 0:
        # the last window's average iterate: Adam's final iterate jitters around the
        # optimum by about the step size; the average over a window does not
        params = window_mean
    m = params[:n].copy()
    L = _full_factor(params[n:], n, rows, cols) if full else np.diag(_softplus(params[n:]))
    return GaussianApproximation(method=method, mean=m, chol=L, loss=losses[:step].copy(),
                                 converged=converged, max_steps=int(max_steps))


def importance_pareto_k(log_density: Callable[[np.ndarray], float],
                        approx: GaussianApproximation, draws: np.ndarray) -> float:
    """Pareto k-hat of the importance ratios ``p / q`` at draws from ``q``.

    Yao, Vehtari, Simpson and Gelman (2018), "Yes, but did it work?:
    evaluating variational inference": fit a generalized Pareto distribution
    to the largest ratios (PSIS, from arviz-stats); ``k < 0.5`` the
    approximation is good, ``0.5 <= k < 0.7`` usable with care, ``k >= 0.7``
    it misses mass the posterior has and its intervals should not be
    trusted.

    Parameters
    ----------
    log_density : callable
        ``x -> log p(x)`` up to a constant, on the unconstrained space.
    approx : GaussianApproximation
    draws : ndarray of shape (S, n_dim)
        Draws from ``approx``.

    Returns
    -------
    float
        k-hat; ``inf`` when ``p`` is zero at some draw.

    Examples
    --------
    A ``q`` wider than ``p`` has bounded ratios (good); one with sd 0.3 against
    ``p``'s 1 has ratios with tail index ``1 / (1 - 0.3^2)``, so ``k = 0.91``:

    >>> p = lambda v: -0.5 * float(v @ v)
    >>> wide = GaussianApproximation("advi", np.zeros(1), 1.5 * np.eye(1), np.zeros(1), True, 1)
    >>> narrow = GaussianApproximation("advi", np.zeros(1), 0.3 * np.eye(1), np.zeros(1), True, 1)
    >>> rng = np.random.default_rng(0)
    >>> k_wide = importance_pareto_k(p, wide, wide.sample(4000, rng))
    >>> k_narrow = importance_pareto_k(p, narrow, narrow.sample(4000, rng))
    >>> bool(k_wide < 0.5 < 0.7 < k_narrow)
    True
    """
    from arviz_stats.base import array_stats

    log_p = np.array([log_density(x) for x in draws])
    if not np.all(np.isfinite(log_p)):
        return float("inf")
    # psislw takes minus the log ratios (its LOO convention: log-likelihoods, weights 1/p)
    _, k_hat = array_stats.psislw(approx.log_density(draws) - log_p, r_eff=1.0)
    return float(k_hat)
