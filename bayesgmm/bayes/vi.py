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

__all__ = [
    "GaussianApproximation",
    "MinibatchTrace",
    "epoch_batches",
    "fit_advi",
    "fit_minibatch_advi",
    "importance_pareto_k",
    "window_converged",
]

_LOG_2PI = np.log(2.0 * np.pi)
VI_METHODS = ("advi", "fullrank_advi")
_MIN_PSIS_DRAWS = 25


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


class _Family:
    """The Gaussian family's parameters as one flat vector ``[mean, scale]`` (PyMC's form).

    Mean-field: ``scale = rho``, ``sigma = softplus(rho)``.  Full-rank: ``scale``
    holds ``L``'s lower triangle row by row, its diagonal through softplus.
    :meth:`draw` is the reparameterisation ``x = m + L eps`` and
    :meth:`ascent` the chain rule from ``d log p / dx`` to the ELBO's
    gradient in the flat vector, with the entropy's exact gradient.
    """

    def __init__(self, method: str, n: int):
        self.full = method == "fullrank_advi"
        self.n = n
        if self.full:
            self.rows, self.cols = np.tril_indices(n)
            self.on_diag = self.rows == self.cols

    def initial(self, mean: np.ndarray, init_std: float) -> np.ndarray:
        n = self.n
        if self.full:
            raw_l = np.where(self.on_diag, _inverse_softplus(init_std), 0.0)
            return np.concatenate([mean, raw_l])
        return np.concatenate([mean, np.full(n, _inverse_softplus(init_std))])

    def from_factor(self, mean: np.ndarray, chol: np.ndarray) -> np.ndarray:
        """The flat vector of ``N(mean, chol chol^T)`` (mean-field: ``chol``'s diagonal)."""
        diag = np.log(np.expm1(np.diag(chol)))  # inverse softplus
        if self.full:
            raw_l = chol[self.rows, self.cols].copy()
            raw_l[self.on_diag] = diag
            return np.concatenate([mean, raw_l])
        return np.concatenate([mean, diag])

    def draw(self, params: np.ndarray, eps: np.ndarray) -> tuple[np.ndarray, float]:
        """``x = m + L eps`` and ``sum log diag(L)`` (the entropy up to a constant)."""
        n = self.n
        m = params[:n]
        if self.full:
            L = _full_factor(params[n:], n, self.rows, self.cols)
            return m + L @ eps, float(np.log(np.diag(L)).sum())
        sigma = _softplus(params[n:])
        return m + sigma * eps, float(np.log(sigma).sum())

    def ascent(self, params: np.ndarray, g: np.ndarray, eps: np.ndarray,
               out: np.ndarray) -> None:
        """The ELBO's single-draw gradient in the flat vector, written into ``out``."""
        n = self.n
        out[:n] = g
        if self.full:
            d = params[n:][self.on_diag]  # the raw diagonal, row by row
            gl = np.outer(g, eps)[self.rows, self.cols]
            gl[self.on_diag] = (gl[self.on_diag] + 1.0 / _softplus(d)) * _sigmoid(d)
            out[n:] = gl
        else:
            rho = params[n:]
            out[n:] = (g * eps + 1.0 / _softplus(rho)) * _sigmoid(rho)

    def mean_and_chol(self, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = self.n
        if self.full:
            return params[:n].copy(), _full_factor(params[n:], n, self.rows, self.cols)
        return params[:n].copy(), np.diag(_softplus(params[n:]))


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
    family = _Family(method, n)
    params = family.initial(mean, init_std)
    adam = _Adam(params.size, learning_rate)
    grad = np.empty(params.size)
    losses = np.empty(max_steps)
    const = 0.5 * n * (1.0 + _LOG_2PI)  # entropy of N(0, I) in n dimensions
    converged = False
    step = 0
    window_sum = np.zeros(params.size)  # Polyak-Ruppert average over each window
    window_mean = None
    while step < max_steps:
        eps = rng.standard_normal(n)
        x, log_det = family.draw(params, eps)
        logp, g = value_and_grad(x)
        if not np.isfinite(logp):  # a wild draw: skip the step, keep the trace honest
            losses[step] = np.nan
            step += 1
            continue
        family.ascent(params, g, eps, grad)
        adam.step(params, grad)
        window_sum += params
        losses[step] = -(logp + log_det + const)
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
    m, L = family.mean_and_chol(params)
    return GaussianApproximation(method=method, mean=m, chol=L, loss=losses[:step].copy(),
                                 converged=converged, max_steps=int(max_steps))


def epoch_batches(n_rows: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch of minibatches: the rows drawn without replacement.

    A random permutation of ``range(n_rows)`` cut into ``ceil(n_rows /
    batch_size)`` consecutive pieces whose sizes differ by at most one (so
    none is larger than ``batch_size``, and no last batch is left nearly
    empty); each piece is sorted, which keeps rows that sit together in
    memory (a missingness pattern's rows in the kernel's order) together.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    batch_size : int
        Largest batch.
    rng : numpy.random.Generator
        Random source of the permutation.

    Returns
    -------
    list of ndarray
        Row indices of each batch; together every row exactly once.

    Examples
    --------
    >>> batches = epoch_batches(10, 4, np.random.default_rng(0))
    >>> [b.size for b in batches], sorted(np.concatenate(batches).tolist()) == list(range(10))
    ([4, 3, 3], True)
    """
    perm = rng.permutation(n_rows)
    n_batches = -(-n_rows // batch_size)
    return [np.sort(b) for b in np.array_split(perm, n_batches)]


def curvature_factor(
    value_and_grad_rows: Callable[[np.ndarray, np.ndarray, float], tuple[float, np.ndarray]],
    x: np.ndarray, rows: np.ndarray, scale: float, *, full: bool, max_std: float,
    step: float = 1e-4,
) -> np.ndarray | None:
    """A Laplace starting factor: ``L`` with ``L L^T`` the inverse of ``-Hessian`` at ``x``.

    The Hessian is taken by central differences of the gradient (``2 n_dim``
    evaluations on ``rows``, their likelihood scaled by ``scale``).  With many
    rows the posterior is nearly Gaussian and its standard deviations shrink
    like ``1 / sqrt(n_rows)`` (0.001 in standardized units at a million rows),
    so a fixed starting spread (``init_std``, 0.1) is far too wide, and the
    optimiser's noisy steps take thousands of iterations to shrink it.
    Full-rank: ``cholesky(inverse(H))``; mean-field: ``1 / sqrt(diag H)``,
    the mean-field optimum for a Gaussian target.  Standard deviations are
    capped at ``max_std`` (few rows: the curvature is weak and the start stays
    as narrow as the fixed one).

    Parameters
    ----------
    value_and_grad_rows : callable
        As in :func:`fit_minibatch_advi`.
    x : ndarray of shape (n_dim,)
        Where the curvature is taken (the starting mean).
    rows : ndarray of int
        Rows used.
    scale : float
        Factor on their log-likelihood (``n_rows / len(rows)``).
    full : bool
        Full-rank factor, else diagonal.
    max_std : float
        Largest standard deviation.
    step : float, default=1e-4
        Finite-difference step in the unconstrained space.

    Returns
    -------
    ndarray of shape (n_dim, n_dim) or None
        Lower triangular; None when a gradient is not finite.

    Examples
    --------
    >>> prec = np.array([[400.0, 100.0], [100.0, 900.0]])
    >>> vgr = lambda x, rows, scale: (-0.5 * x @ prec @ x, -prec @ x)
    >>> L = curvature_factor(vgr, np.zeros(2), np.arange(1), 1.0, full=True, max_std=1.0)
    >>> bool(np.allclose(L @ L.T, np.linalg.inv(prec)))
    True
    """
    n = x.size
    jac = np.empty((n, n))
    for i in range(n):
        shift = np.zeros(n)
        shift[i] = step
        v_plus, g_plus = value_and_grad_rows(x + shift, rows, scale)
        v_minus, g_minus = value_and_grad_rows(x - shift, rows, scale)
        if not (np.isfinite(v_plus) and np.isfinite(v_minus)):
            return None
        jac[i] = (g_plus - g_minus) / (2.0 * step)
    if not np.all(np.isfinite(jac)):
        return None
    hess = -0.5 * (jac + jac.T)
    if full:
        try:
            chol = np.linalg.cholesky(np.linalg.inv(hess))
        except np.linalg.LinAlgError:
            chol = None
        if chol is not None and np.all(np.sum(chol * chol, axis=1) <= max_std**2):
            return chol
    h = np.diag(hess)
    sd = np.full(n, max_std)
    positive = h > 0
    sd[positive] = np.minimum(1.0 / np.sqrt(h[positive]), max_std)
    return np.diag(sd)


def _moved(family: _Family, before: np.ndarray, after: np.ndarray) -> float:
    """How far ``q`` moved between two parameter vectors, in ``q``'s own standard deviations.

    The largest of ``|change of a mean| / sd`` and ``|change of log sd|`` over the
    coordinates, ``sd`` being ``q``'s marginal standard deviation at ``after``.
    """
    m0, L0 = family.mean_and_chol(before)
    m1, L1 = family.mean_and_chol(after)
    sd0 = np.sqrt(np.sum(L0 * L0, axis=1))
    sd1 = np.sqrt(np.sum(L1 * L1, axis=1))
    return float(max(np.max(np.abs(m1 - m0) / sd1), np.max(np.abs(np.log(sd1 / sd0)))))


@dataclass
class MinibatchTrace:
    """What :func:`fit_minibatch_advi` did besides the loss (for the ``variational`` group).

    Attributes
    ----------
    batch_size : int
        Largest minibatch.
    n_epochs : float
        Rows evaluated over ``n_rows``: the minibatches, and with the control
        variate also the same rows at the anchor and the full passes there.
    n_decays : int
        Times the learning rate was halved.
    final_learning_rate : float
        Adam's rate at the end.
    stationary_step : int
        Step at which the windowed ELBO stopped improving (0 if it never did).
    moved : list of float
        Per window after that, how far the window-averaged ``q`` moved
        (:func:`_moved`, in ``q``'s standard deviations).
    control_variate : bool
        Whether the gradients were taken relative to an anchor.
    n_anchors : int
        Full passes over the data at anchors.
    """

    batch_size: int
    n_epochs: float
    n_decays: int
    final_learning_rate: float
    stationary_step: int
    moved: list[float]
    control_variate: bool = False
    n_anchors: int = 0


def fit_minibatch_advi(
    value_and_grad_rows: Callable[[np.ndarray, np.ndarray, float], tuple[float, np.ndarray]],
    start: np.ndarray,
    n_rows: int,
    batch_size: int,
    *,
    method: str = "advi",
    max_steps: int = 20_000,
    learning_rate: float = 0.01,
    init_std: float = 0.1,
    tolerance: float = 1e-3,
    window: int = 1000,
    move_tolerance: float = 0.2,
    max_decays: int = 6,
    value_and_grad: Callable[[np.ndarray], tuple[float, np.ndarray]] | None = None,
    anchor_distance: float = 0.5,
    curvature_rows: int = 100_000,
    rng: np.random.Generator | None = None,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[GaussianApproximation, MinibatchTrace]:
    """ADVI with stochastic ELBO gradients on minibatches of rows.

    Each step draws ``x ~ q`` once and evaluates the log-density with the
    likelihood of one minibatch ``b`` scaled by ``n_rows / |b|`` (the prior
    once): an unbiased estimate of the full log-density and of its gradient,
    since every row is in a uniformly random batch of each epoch
    (:func:`epoch_batches`, rows without replacement within an epoch).  The
    optimiser is the same Adam as :func:`fit_advi`, on the same family.

    Convergence under gradient noise.  With minibatches the gradient's noise
    does not vanish at the optimum, so at a constant rate the iterates keep
    moving in a cloud whose size is set by the rate, and an ELBO estimate
    varies by ``n_rows / sqrt(|b|)`` times a row's spread.  The rule has two
    phases, checked at the end of every window of ``window`` steps:

    1. Search, at ``learning_rate``: until the windowed ELBO stops improving
       (:func:`window_converged`: the mean loss of the last window against the
       one before gains less than ``tolerance`` times the loss, or less than
       two standard errors of the difference).
    2. Refinement: the rate is halved at every window (at most
       ``max_decays`` times, then kept), which shrinks the cloud, and the
       iterates of each window are averaged (Polyak-Ruppert).  Converged
       when the window-averaged ``q`` moved by less than ``move_tolerance``
       of its own standard deviations (means; and log standard deviations
       by less than ``move_tolerance``) from the window before.

    The approximation returned is the last window's average.  With a step
    budget reached first, ``converged`` is False (the last window's average
    is returned all the same).

    Parameters
    ----------
    value_and_grad_rows : callable
        ``(x, rows, scale) -> (estimate, gradient)``: the log-density with the
        likelihood of ``rows`` multiplied by ``scale`` (e.g.
        :meth:`bayesgmm.bayes.density.MixtureDensity.value_and_grad_rows`).
    start : ndarray of shape (n_dim,)
        Initial mean of ``q``.
    n_rows : int
        Number of rows of the data.
    batch_size : int
        Rows per minibatch (at most; see :func:`epoch_batches`).
    method : {"advi", "fullrank_advi"}, default="advi"
        Mean-field or full-rank Gaussian.
    max_steps : int, default=20000
        Step budget.
    learning_rate : float, default=0.01
        Adam's rate during the search phase.
    init_std : float, default=0.1
        Initial standard deviation of ``q`` in every direction.
    tolerance : float, default=1e-3
        Relative gain of the windowed ELBO that ends the search phase.
    window : int, default=1000
        Steps per window.
    move_tolerance : float, default=0.2
        Convergence of the refinement phase, in ``q``'s standard deviations.
    max_decays : int, default=6
        Most halvings of the rate (``learning_rate / 64`` at the default).
    value_and_grad : callable, optional
        ``x -> (log p(x), gradient)`` on all rows.  When given, each step's
        estimate is taken relative to an anchor ``a`` (a control variate, as
        in SVRG, Johnson and Zhang 2013): ``est(x) - est(a) + full(a)`` with
        the same rows at ``x`` and ``a``, unbiased, with noise that shrinks
        with ``|x - a|``.  The anchor starts at ``start`` and moves to the
        window-averaged mean of ``q`` (one call of ``value_and_grad``) when
        that moved by more than ``anchor_distance`` of ``q``'s standard
        deviations.
    anchor_distance : float, default=0.5
        See ``value_and_grad``.
    curvature_rows : int, default=100000
        Start ``q`` at the Laplace approximation at ``start``, from the
        curvature on this many random rows (:func:`curvature_factor`,
        standard deviations capped at ``init_std``); 0: every standard
        deviation ``init_std``.
    rng : numpy.random.Generator, optional
        Random source of the minibatches and of the Monte Carlo draws.
    progress : callable, optional
        Called as ``progress(step, loss)`` every 100 steps, with the mean loss
        of the current window so far.

    Returns
    -------
    approx : GaussianApproximation
        ``loss`` holds the per-step estimates of the negative ELBO.
    trace : MinibatchTrace

    Raises
    ------
    ValueError
        For an unknown ``method``, a ``batch_size`` outside ``1..n_rows``, or
        a non-finite log-density at the start.

    Examples
    --------
    A Gaussian mean from 2,000 observations, 100 at a time: the posterior is
    ``N(mean(y) n / (n + 1), 1 / (n + 1))`` under a ``N(0, 1)`` prior.

    >>> y = np.random.default_rng(1).normal(3.0, 1.0, 2000)
    >>> def dens(x, rows, scale):
    ...     r = y[rows] - x[0]
    ...     return -0.5 * x[0] ** 2 - 0.5 * scale * r @ r, np.array([-x[0] + scale * r.sum()])
    >>> q, trace = fit_minibatch_advi(dens, np.zeros(1), y.size, 100,
    ...                               rng=np.random.default_rng(0))
    >>> exact = y.sum() / (y.size + 1)
    >>> bool(abs(q.mean[0] - exact) < 0.1 / np.sqrt(y.size)), q.converged
    (True, True)
    """
    if method not in VI_METHODS:
        raise ValueError(f"method must be one of {VI_METHODS}; got {method!r}.")
    n_rows = int(n_rows)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer) \
            or not 1 <= batch_size <= n_rows:
        raise ValueError(f"batch_size must be an integer in [1, {n_rows}] (the number of "
                         f"rows); got {batch_size!r}.")
    rng = np.random.default_rng() if rng is None else rng
    mean = np.array(start, dtype=float)
    n = mean.size
    value, _ = value_and_grad_rows(mean, np.zeros(0, dtype=np.intp), 1.0)
    if not np.isfinite(value):
        raise ValueError("ADVI: the log-density is not finite at the starting point.")
    family = _Family(method, n)
    params = family.initial(mean, init_std)
    if curvature_rows:  # a Laplace start, on a random subset of rows
        subset = np.sort(rng.choice(n_rows, min(n_rows, int(curvature_rows)), replace=False))
        chol = curvature_factor(value_and_grad_rows, mean, subset, n_rows / subset.size,
                                full=family.full, max_std=init_std)
        if chol is not None:
            params = family.from_factor(mean, chol)
    adam = _Adam(params.size, learning_rate)
    grad = np.empty(params.size)
    losses = np.empty(max_steps)
    const = 0.5 * n * (1.0 + _LOG_2PI)  # entropy of N(0, I) in n dimensions
    converged, searching = False, True
    n_decays = stationary_step = rows_seen = step = n_anchors = 0
    moved: list[float] = []
    batches: list[np.ndarray] = []
    window_sum = np.zeros(params.size)
    window_mean = previous = None
    anchor = None
    if value_and_grad is not None:  # the control variate's anchor: one pass over the data
        anchor_value, anchor_grad = value_and_grad(mean)
        anchor, n_anchors = mean.copy(), 1
        rows_seen += n_rows
    while step < max_steps:
        if not batches:
            batches = epoch_batches(n_rows, int(batch_size), rng)[::-1]  # popped from the end
        rows = batches.pop()
        scale = n_rows / rows.size
        eps = rng.standard_normal(n)
        x, log_det = family.draw(params, eps)
        logp, g = value_and_grad_rows(x, rows, scale)
        rows_seen += rows.size
        if anchor is not None and np.isfinite(logp):
            # the same rows at the anchor: their scaled sum minus the full sum there
            # has mean zero over the batches and cancels most of the batch's noise
            at_anchor, g_anchor = value_and_grad_rows(anchor, rows, scale)
            rows_seen += rows.size
            logp = logp - at_anchor + anchor_value
            g = g - g_anchor + anchor_grad
        if not np.isfinite(logp):  # a wild draw: skip the step, keep the trace honest
            losses[step] = np.nan
        else:
            family.ascent(params, g, eps, grad)
            adam.step(params, grad)
            losses[step] = -(logp + log_det + const)
        window_sum += params
        step += 1
        if progress is not None and step % 100 == 0:
            done = losses[step - 1 - (step - 1) % window:step]
            progress(step, float(np.nanmean(done)) if np.isfinite(done).any() else np.nan)
        if step % window:
            continue
        window_mean, window_sum = window_sum / window, np.zeros(params.size)
        if anchor is not None:
            m_now, L_now = family.mean_and_chol(window_mean)
            sd_now = np.sqrt(np.sum(L_now * L_now, axis=1))
            if np.max(np.abs(m_now - anchor) / sd_now) > anchor_distance:
                value_now, grad_now = value_and_grad(m_now)
                rows_seen += n_rows
                if np.isfinite(value_now):
                    anchor, anchor_value, anchor_grad = m_now, value_now, grad_now
                    n_anchors += 1
        if searching:
            if window_converged(losses[:step], window, tolerance):
                searching, stationary_step = False, step
        else:
            moved.append(_moved(family, previous, window_mean))
            if moved[-1] <= move_tolerance:
                converged = True
                break
        if not searching and n_decays < max_decays:
            n_decays += 1
            adam.lr = learning_rate / 2.0**n_decays
        previous = window_mean
    if window_mean is not None:  # the last complete window's average iterate
        params = window_mean
    m, L = family.mean_and_chol(params)
    approx = GaussianApproximation(method=method, mean=m, chol=L, loss=losses[:step].copy(),
                                   converged=converged, max_steps=int(max_steps))
    trace = MinibatchTrace(batch_size=int(batch_size), n_epochs=rows_seen / n_rows,
                           n_decays=n_decays, final_learning_rate=float(adam.lr),
                           stationary_step=stationary_step, moved=moved,
                           control_variate=anchor is not None, n_anchors=n_anchors)
    return approx, trace


def importance_pareto_k(log_density: Callable[[np.ndarray], float],
                        approx: GaussianApproximation, draws: np.ndarray,
                        workers: int = 1) -> float:
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
    workers : int, default=1
        Threads evaluating ``log_density`` at the draws (worth it when one
        evaluation is a pass over many rows and releases the GIL, as the
        kernel does).

    Returns
    -------
    float
        k-hat; ``inf`` when ``p`` is zero at some draw; NaN with fewer than
        30 draws (PSIS's tail, ``min(S / 5, 3 sqrt(S))`` ratios, is too short:
        arviz-stats raises below 25 draws and gives NaN below 30).

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

    if len(draws) < _MIN_PSIS_DRAWS:  # PSIS fits at least 5 tail ratios: not judged
        return float("nan")
    if workers > 1 and len(draws) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers) as pool:
            log_p = np.array(list(pool.map(log_density, draws)))
    else:
        log_p = np.array([log_density(x) for x in draws])
    if not np.all(np.isfinite(log_p)):
        return float("inf")
    # psislw takes minus the log ratios (its LOO convention: log-likelihoods, weights 1/p)
    _, k_hat = array_stats.psislw(approx.log_density(draws) - log_p, r_eff=1.0)
    return float(k_hat)
