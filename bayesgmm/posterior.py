"""Posterior summaries of Bayesian mixture fits (NumPy, xarray and ArviZ; no PyMC).

Everything here reads the draws stored in a :class:`~bayesgmm.results.GMMResult`
(or its ``idata`` tree): per-draw responsibilities and their credible
intervals, assignment uncertainty per point, WAIC (computed here: ArviZ 1.x has
no ``waic``), PSIS-LOO through :func:`arviz.loo`, and convergence diagnostics
on the relabeled draws.

Memory: nothing here holds a ``(chain, draw, obs, component)`` array of a whole fit.
Per-draw quantities over observations are computed for one block of observations at a
time, with every draw (exact quantiles need all draws of a point), in blocks of at most
:data:`MEMORY_BUDGET` bytes of float64 values, and reduced on the spot (means,
quantiles, the pointwise log-likelihood, PSIS per point). A fit keeps what users read:
posterior-mean responsibilities, their default interval and the pointwise
log-likelihood (float32 above :data:`LOG_LIK_FLOAT64_MAX_VALUES` values; see
:func:`log_likelihood_dtype`).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm import em
from bayesgmm._constants import CHAIN, COMPONENT, DRAW, FEATURE, OBS
from bayesgmm.bayes.relabel import switches_within_chains
from bayesgmm.exceptions import DiagnosticsWarning

__all__ = [
    "ELPD",
    "assignment_uncertainty",
    "component_log_density",
    "diagnostics",
    "draw_responsibilities",
    "draw_summaries",
    "log_likelihood_and_responsibilities",
    "log_likelihood_dtype",
    "log_likelihood_group",
    "obs_blocks",
    "loo",
    "pointwise_log_likelihood",
    "recompute_log_likelihood",
    "responsibility_draws",
    "responsibility_group",
    "responsibility_interval",
    "vi_pareto_k_problem",
    "waic",
]

_SAMPLE_DIMS = (CHAIN, DRAW)
#: Name of the observed data in ``idata["observed_data"]`` (and of simulated data sets).
OBSERVED_VAR = "X"
#: Name of the pointwise log-likelihood in ``idata["log_likelihood"]``. ArviZ pairs a
#: log-likelihood with its observed variable by name, so the two share the value "X".
LOG_LIK_VAR = OBSERVED_VAR
#: Diagnostic thresholds, used by every warning and by :func:`bayesgmm.compare.fit_status`:
#: R-hat and bulk/tail ESS as Vehtari et al. (2021) recommend; Pareto k of importance
#: ratios, of PSIS-LOO (Vehtari et al. 2024) or of ADVI's p/q (Yao et al. 2018).
RHAT_MAX = 1.01
ESS_MIN = 400
PARETO_K_MAX = 0.7
WAIC_VAR_MAX = 0.4
_BLOCK_VALUES = 2_000_000
#: Bytes of float64 working values (draws x observations x components) that one block of
#: per-draw responsibilities may take; the summaries hold a few such blocks at a time.
MEMORY_BUDGET = 64 * 2**20
#: Pointwise log-likelihood matrices with at most this many (draw, observation) values
#: (32 MB in float64) are kept in float64 and saved in files; larger ones are kept in
#: float32 and recomputed from the draws and the data when a file is loaded.
LOG_LIK_FLOAT64_MAX_VALUES = 2**22
#: Name of the ``idata`` group holding the stored responsibility summaries.
RESPONSIBILITY_GROUP = "responsibility_summary"
#: Interval stored with every fit (the default ``prob`` of the methods below).
DEFAULT_PROB = 0.94
_CI_BOUND = "ci_bound"


# ---------------------------------------------------------------------------
# per-draw densities
# ---------------------------------------------------------------------------


def component_log_density(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, Sigma_k)`` for every draw, point and component.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data.
    weights : ndarray of shape (n_draws, n_components)
        Mixing weights per draw.
    means : ndarray of shape (n_draws, n_components, n_features)
        Means per draw.
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Full covariances per draw.

    Returns
    -------
    ndarray of shape (n_draws, n_obs, n_components)

    Examples
    --------
    >>> out = component_log_density(np.zeros((1, 1)), np.ones((1, 1)), np.zeros((1, 1, 1)),
    ...                             np.ones((1, 1, 1, 1)))
    >>> round(float(out[0, 0, 0]), 6)
    -0.918939
    """
    X = np.asarray(X, dtype=float)
    n_draws, k = weights.shape
    d = X.shape[1]
    out = np.empty((n_draws, X.shape[0], k))
    # draws per block: the components of a block of draws are stacked into one mixture
    # state and evaluated by EM's log-density in one pass; keep its (N, draws x K) output
    # near 16 MB
    chunk = max(1, _BLOCK_VALUES // max(1, k * X.shape[0]))
    for start in range(0, n_draws, chunk):
        sl = slice(start, start + chunk)
        size = weights[sl].shape[0]
        covs = np.asarray(covariances[sl], dtype=float).reshape(size * k, d, d)
        stacked = em.EMState(np.asarray(weights[sl], dtype=float).reshape(-1),
                             np.asarray(means[sl], dtype=float).reshape(size * k, d), covs,
                             em.precision_cholesky(covs, "full"), "full")
        wlp = em.weighted_log_prob(X, stacked)  # (N, size * K)
        out[sl] = wlp.reshape(X.shape[0], size, k).transpose(1, 0, 2)
    return out


def log_likelihood_dtype(n_values: int) -> type:
    """The dtype the pointwise log-likelihood of ``n_values`` (draw, observation) pairs is kept in.

    float64 up to :data:`LOG_LIK_FLOAT64_MAX_VALUES` values, float32 above, where it
    halves the largest array of a fit.  float32 is enough for what is read from it:
    its relative rounding (6e-8) moves a log-density of magnitude 10 by 6e-7, and
    every sum over draws or points (WAIC, PSIS-LOO) is taken in float64 from the
    rounded values, so an elpd of N points moves by about ``6e-7 sqrt(N)`` (0.1
    milli-nats at N = 20,000) against Monte Carlo standard errors of tenths of a
    nat or more; tests/test_bounded_memory.py checks WAIC and LOO against float64.

    Examples
    --------
    >>> log_likelihood_dtype(1000).__name__, log_likelihood_dtype(4000 * 20000).__name__
    ('float64', 'float32')
    """
    return np.float64 if n_values <= LOG_LIK_FLOAT64_MAX_VALUES else np.float32


def obs_blocks(n_obs: int, n_draws: int, n_components: int,
               budget: int | None = None) -> list[slice]:
    """Blocks of observations whose per-draw, per-component float64 values fit ``budget``.

    Parameters
    ----------
    n_obs, n_draws, n_components : int
        Sizes of the fit.
    budget : int, optional
        Bytes per block (default :data:`MEMORY_BUDGET`); at least one observation
        per block whatever the budget.

    Returns
    -------
    list of slice
        Consecutive blocks covering ``range(n_obs)``.

    Examples
    --------
    >>> obs_blocks(10, 100, 2, budget=8 * 100 * 2 * 4)
    [slice(0, 4, None), slice(4, 8, None), slice(8, 10, None)]
    """
    budget = MEMORY_BUDGET if budget is None else int(budget)
    size = max(1, budget // (8 * max(1, n_draws) * max(1, n_components)))
    return [slice(a, min(a + size, n_obs)) for a in range(0, n_obs, size)]


def _normalise_last(lp: np.ndarray) -> np.ndarray:
    """Turn log-densities ``(..., K)`` into responsibilities in place; return the log-sum."""
    top = np.max(lp, axis=-1, keepdims=True)
    top[~np.isfinite(top)] = 0.0
    lp -= top
    np.exp(lp, out=lp)
    total = np.sum(lp, axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        lp /= total
    with np.errstate(divide="ignore"):
        return (np.log(total) + top)[..., 0]


def _blocks(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
            budget: int | None) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Per block of observations: responsibilities ``(S, n, K)`` and log-likelihood ``(S, n)``."""
    for sl in obs_blocks(X.shape[0], weights.shape[0], weights.shape[1], budget):
        resp = component_log_density(X[sl], weights, means, covariances)
        yield sl, resp, _normalise_last(resp)


class DrawSummaries(NamedTuple):
    """What :func:`draw_summaries` keeps of the per-draw responsibilities."""

    log_lik: np.ndarray | None
    mean: np.ndarray
    interval: np.ndarray | None


def draw_summaries(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, *,
    prob: float | None = None, log_lik: bool = True, log_lik_dtype: Any = np.float64,
    budget: int | None = None,
) -> DrawSummaries:
    """Pointwise log-likelihood, mean responsibilities and their interval in one pass.

    The per-draw responsibilities are computed for one block of observations at
    a time (all draws, at most ``budget`` bytes of float64 values, see
    :func:`obs_blocks`) and reduced at once: the block size changes nothing but
    rounding.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data (NaN entries: the density of each row's observed part).
    weights : ndarray of shape (n_draws, n_components)
        Mixing weights per draw.
    means : ndarray of shape (n_draws, n_components, n_features)
        Means per draw.
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Full covariances per draw.
    prob : float, optional
        Also compute the equal-tailed ``prob`` interval of every responsibility
        (NumPy's linear quantiles over draws).
    log_lik : bool, default=True
        Keep the pointwise log-likelihood.
    log_lik_dtype : dtype, default=float64
        Its dtype (computed in float64, then rounded).
    budget : int, optional
        Bytes per block (default :data:`MEMORY_BUDGET`).

    Returns
    -------
    DrawSummaries
        ``log_lik`` ``(n_draws, n_obs)`` or ``None``; ``mean`` ``(n_obs, n_components)``;
        ``interval`` ``(n_obs, n_components, 2)`` (lower, upper) or ``None``.

    Examples
    --------
    >>> out = draw_summaries(np.zeros((2, 1)), np.full((1, 2), 0.5), np.zeros((1, 2, 1)),
    ...                      np.ones((1, 2, 1, 1)), prob=0.9)
    >>> out.log_lik.shape, out.mean.tolist(), out.interval.shape
    ((1, 2), [[0.5, 0.5], [0.5, 0.5]], (2, 2, 2))
    """
    X = np.asarray(X, dtype=float)
    n, (s, k) = X.shape[0], weights.shape
    ll = np.empty((s, n), dtype=log_lik_dtype) if log_lik else None
    mean = np.empty((n, k))
    interval = None
    if prob is not None:
        interval = np.empty((n, k, 2))
        tail = (1.0 - prob) / 2.0
    for sl, resp, block_ll in _blocks(X, weights, means, covariances, budget):
        if ll is not None:
            ll[:, sl] = block_ll
        mean[sl] = resp.mean(axis=0)
        if interval is not None:
            interval[sl] = np.moveaxis(np.quantile(resp, [tail, 1.0 - tail], axis=0), 0, -1)
    return DrawSummaries(ll, mean, interval)


def log_likelihood_and_responsibilities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise marginal log-likelihood and posterior-mean responsibilities in one pass.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data.
    weights : ndarray of shape (n_draws, n_components)
        Mixing weights per draw.
    means : ndarray of shape (n_draws, n_components, n_features)
        Means per draw.
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Full covariances per draw.

    Returns
    -------
    log_lik : ndarray of shape (n_draws, n_obs)
        As :func:`pointwise_log_likelihood` (float64), computed in blocks of
        observations (:func:`draw_summaries`).
    resp_mean : ndarray of shape (n_obs, n_components)
        Mean over draws of :func:`draw_responsibilities`.

    Examples
    --------
    >>> ll, r = log_likelihood_and_responsibilities(
    ...     np.zeros((2, 1)), np.full((1, 2), 0.5), np.zeros((1, 2, 1)), np.ones((1, 2, 1, 1)))
    >>> ll.shape, r.tolist()
    ((1, 2), [[0.5, 0.5], [0.5, 0.5]])
    """
    out = draw_summaries(X, weights, means, covariances)
    return out.log_lik, out.mean


def pointwise_log_likelihood(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Marginal (labels summed out) log-likelihood of every point under every draw.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data.
    weights : ndarray of shape (n_draws, n_components)
        Mixing weights per draw.
    means : ndarray of shape (n_draws, n_components, n_features)
        Means per draw.
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Full covariances per draw.

    Returns
    -------
    ndarray of shape (n_draws, n_obs)
        ``log sum_k w_k N(x_n | mu_k, Sigma_k)``.

    Examples
    --------
    >>> ll = pointwise_log_likelihood(np.zeros((2, 1)), np.full((1, 2), 0.5),
    ...                               np.zeros((1, 2, 1)), np.ones((1, 2, 1, 1)))
    >>> ll.shape
    (1, 2)
    """
    # in blocks of observations (draw_summaries): never the (draws, obs, components) array
    return draw_summaries(X, weights, means, covariances).log_lik


def draw_responsibilities(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Responsibilities ``p(z_n = k | x_n, theta_s)`` under every draw.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data.
    weights : ndarray of shape (n_draws, n_components)
        Mixing weights per draw.
    means : ndarray of shape (n_draws, n_components, n_features)
        Means per draw.
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Full covariances per draw.

    Returns
    -------
    ndarray of shape (n_draws, n_obs, n_components)
        Rows sum to one.

    Examples
    --------
    >>> r = draw_responsibilities(np.zeros((1, 1)), np.full((1, 2), 0.5),
    ...                           np.zeros((1, 2, 1)), np.ones((1, 2, 1, 1)))
    >>> r[0, 0].tolist()
    [0.5, 0.5]
    """
    resp = component_log_density(X, weights, means, covariances)
    _normalise_last(resp)
    return resp


#: Attribute of a ``log_likelihood`` group computed by :func:`log_likelihood_group`: it can be
#: recomputed from the ``posterior`` and ``observed_data`` groups (and is, on loading a
#: file that left a large one out).
LOG_LIK_SOURCE_ATTR = "bayesgmm_computed_from"
LOG_LIK_SOURCE = "posterior, observed_data"


def log_likelihood_group(log_lik: np.ndarray, chains: Any, draws: Any) -> xr.Dataset:
    """The ``log_likelihood`` group of a fit from its ``(chain x draw, obs)`` matrix.

    Parameters
    ----------
    log_lik : ndarray of shape (n_chains * n_draws, n_obs)
        Pointwise log-likelihood, chains stacked (any float dtype, kept).
    chains, draws : array-like
        The ``chain`` and ``draw`` coordinates.

    Returns
    -------
    xarray.Dataset
        ``X`` with dims ``(chain, draw, obs)``, attribute ``bayesgmm_computed_from``.
    """
    chains, draws = np.asarray(chains), np.asarray(draws)
    values = log_lik.reshape(chains.size, draws.size, -1)
    return xr.Dataset(
        {LOG_LIK_VAR: ((CHAIN, DRAW, OBS), values)},
        coords={CHAIN: chains, DRAW: draws, OBS: np.arange(values.shape[-1])},
        attrs={LOG_LIK_SOURCE_ATTR: LOG_LIK_SOURCE},
    )


def recompute_log_likelihood(idata: xr.DataTree, dtype: Any = None) -> xr.Dataset:
    """The ``log_likelihood`` group again, from the ``posterior`` and ``observed_data`` groups.

    The same computation as at fit time (:func:`draw_summaries`, blocks of
    observations), so the same values up to floating-point rounding of the
    machine's BLAS.

    Parameters
    ----------
    idata : xarray.DataTree
        A Bayesian fit's tree (``posterior`` and ``observed_data``).
    dtype : dtype, optional
        Default :func:`log_likelihood_dtype` of its size.

    Returns
    -------
    xarray.Dataset
        As :func:`log_likelihood_group`.
    """
    post, X, (w, m, c) = _draws_and_data(idata)
    if dtype is None:
        dtype = log_likelihood_dtype(w.shape[0] * X.shape[0])
    ll = draw_summaries(X, w, m, c, log_lik_dtype=dtype).log_lik
    return log_likelihood_group(ll, post[CHAIN].values, post[DRAW].values)


# ---------------------------------------------------------------------------
# access to a result's draws
# ---------------------------------------------------------------------------


def _idata(result: Any) -> xr.DataTree:
    idata = result if isinstance(result, xr.DataTree) else getattr(result, "idata", None)
    if idata is None or "posterior" not in idata.children:
        raise ValueError(
            "This needs posterior draws (a Bayesian fit from bayesgmm.BayesGMM); "
            "the result has no posterior group."
        )
    return idata


def _stacked_draws(idata: xr.DataTree) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    post = idata["posterior"].to_dataset()
    n_chain, n_draw = post.sizes[CHAIN], post.sizes[DRAW]
    s = n_chain * n_draw
    w = post["weights"].transpose(CHAIN, DRAW, COMPONENT).values.reshape(s, -1)
    m = post["means"].transpose(CHAIN, DRAW, COMPONENT, FEATURE).values
    c = post["covariances"].values
    return w, m.reshape(s, *m.shape[2:]), c.reshape(s, *c.shape[2:])


def _observed(idata: xr.DataTree) -> np.ndarray:
    if "observed_data" not in idata.children:
        raise ValueError("The posterior tree has no observed_data group; refit to get it.")
    return idata["observed_data"].to_dataset()[OBSERVED_VAR].transpose(OBS, FEATURE).values


def _draws_and_data(result: Any) -> tuple[xr.Dataset, np.ndarray, tuple]:
    idata = _idata(result)
    return idata["posterior"].to_dataset(), _observed(idata), _stacked_draws(idata)


def _responsibility_draws(result: Any) -> xr.DataArray:
    post, X, (w, m, c) = _draws_and_data(result)
    n_chain, n_draw = post.sizes[CHAIN], post.sizes[DRAW]
    resp = draw_responsibilities(X, w, m, c).reshape(n_chain, n_draw, X.shape[0], -1)
    return xr.DataArray(
        resp, dims=(CHAIN, DRAW, OBS, COMPONENT),
        coords={CHAIN: post[CHAIN].values, DRAW: post[DRAW].values,
                OBS: np.arange(X.shape[0]), COMPONENT: post[COMPONENT].values},
        name="responsibilities",
    )


def responsibility_draws(result: Any) -> xr.DataArray:
    """Responsibilities of every point under every posterior draw.

    This is the one function that holds the whole ``(chain, draw, obs, component)``
    array (8 bytes each: 2.6 GB for 4 x 1000 draws of 20,000 points and 4
    components); the summaries below never call it.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).

    Returns
    -------
    xarray.DataArray
        Dims ``(chain, draw, obs, component)``.
    """
    return _responsibility_draws(result)


def responsibility_group(mean: np.ndarray, interval: np.ndarray, prob: float,
                         components: Any) -> xr.Dataset:
    """The ``idata`` group of a fit's responsibility summaries.

    Parameters
    ----------
    mean : ndarray of shape (n_obs, n_components)
        Posterior-mean responsibilities.
    interval : ndarray of shape (n_obs, n_components, 2)
        Their equal-tailed ``prob`` interval (lower, upper).
    prob : float
        Mass of the interval.
    components : array-like
        The ``component`` coordinate.

    Returns
    -------
    xarray.Dataset
        ``mean`` (obs, component) and ``interval`` (obs, component, ci_bound),
        the latter with attrs ``ci_kind="eti"`` and ``ci_prob``.
    """
    coords = {OBS: np.arange(mean.shape[0]), COMPONENT: np.asarray(components)}
    return xr.Dataset(
        {"mean": ((OBS, COMPONENT), mean),
         "interval": ((OBS, COMPONENT, _CI_BOUND), interval,
                      {"ci_kind": "eti", "ci_prob": float(prob)})},
        coords={**coords, _CI_BOUND: ["lower", "upper"]},
    )


def _stored(result: Any, prob: float) -> xr.Dataset | None:
    """The fit's stored responsibility summaries if their interval has mass ``prob``."""
    idata = _idata(result)
    if RESPONSIBILITY_GROUP not in idata.children:
        return None
    group = idata[RESPONSIBILITY_GROUP].to_dataset()
    if "interval" not in group or "mean" not in group:
        return None
    if float(group["interval"].attrs.get("ci_prob", np.nan)) != float(prob):
        return None
    return group


def _summaries(result: Any, prob: float, budget: int | None = None) -> xr.Dataset:
    """Mean responsibilities and their ``prob`` interval: stored, or computed in blocks."""
    group = None if budget is not None else _stored(result, prob)
    if group is not None:
        return group
    post, X, (w, m, c) = _draws_and_data(result)
    out = draw_summaries(X, w, m, c, prob=prob, log_lik=False, budget=budget)
    return responsibility_group(out.mean, out.interval, prob, post[COMPONENT].values)


def _check_prob(prob: float) -> None:
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in the open interval (0, 1); got {prob!r}.")


def responsibility_interval(result: Any, prob: float = DEFAULT_PROB, *,
                            budget: int | None = None) -> xr.DataArray:
    """Equal-tailed credible interval of every responsibility.

    The interval at ``prob=0.94`` is stored with every fit (computed once, in the
    pass that computes the pointwise log-likelihood); any other ``prob`` is
    computed from the draws in blocks of observations (:func:`draw_summaries`),
    with exact quantiles (all draws of a block of points at once).

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    prob : float, default=0.94
        Mass inside the interval, in (0, 1).
    budget : int, optional
        Bytes per block of per-draw values (default :data:`MEMORY_BUDGET`); when
        given, the interval is recomputed even if stored.

    Returns
    -------
    xarray.DataArray
        Dims ``(obs, component, ci_bound)``, ``ci_bound`` = ``["lower", "upper"]``;
        attrs ``ci_kind="eti"`` and ``ci_prob``.
    """
    _check_prob(prob)
    out = _summaries(result, prob, budget)["interval"].copy()
    out.attrs = {"ci_kind": "eti", "ci_prob": float(prob)}
    return out.rename("responsibility_interval")


def assignment_uncertainty(result: Any, prob: float = DEFAULT_PROB, *,
                           budget: int | None = None) -> pd.DataFrame:
    """Per point: assigned component, its probability, its interval and the entropy.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    prob : float, default=0.94
        Mass of the credible interval of the assignment probability.
    budget : int, optional
        As in :func:`responsibility_interval`.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``obs``: ``label`` (component with the highest posterior-mean
        responsibility), ``probability`` (that responsibility), ``lower`` and
        ``upper`` (its equal-tailed interval over draws: the assigned
        component's entry of :func:`responsibility_interval`) and ``entropy``
        (nats, of the posterior-mean responsibilities; 0 = certain, ``log K`` =
        no idea).
    """
    _check_prob(prob)
    group = _summaries(result, prob, budget)
    mean = group["mean"].values
    interval = group["interval"].values
    labels = mean.argmax(axis=1)
    n = mean.shape[0]
    rows = np.arange(n)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(mean > 0, mean * np.log(mean), 0.0).sum(axis=1)
    return pd.DataFrame(
        {
            "label": labels,
            "probability": mean[rows, labels],
            "lower": interval[rows, labels, 0],
            "upper": interval[rows, labels, 1],
            "entropy": entropy,
        },
        index=pd.Index(rows, name=OBS),
    )


# ---------------------------------------------------------------------------
# WAIC and LOO
# ---------------------------------------------------------------------------


@dataclass
class ELPD:
    """Expected log pointwise predictive density (WAIC), ArviZ's vocabulary.

    Attributes
    ----------
    kind : str
        ``"waic"``.
    elpd : float
        ``sum_n (lppd_n - p_n)``.
    se : float
        Standard error of ``elpd``: ``sqrt(n var(elpd_n))``, the variance with
        ``n - 1`` as in PSIS-LOO (Vehtari, Gelman and Gabry 2017).
    p : float
        Effective number of parameters ``sum_n var_s log p(x_n | theta_s)``.
    pointwise : xarray.DataArray
        ``elpd_n``, dim ``obs``.
    p_pointwise : xarray.DataArray
        ``p_n``, dim ``obs``.
    warning : bool
        Any ``p_n > 0.4`` (Vehtari, Gelman and Gabry 2017): WAIC is then
        unreliable; prefer ``loo()``.
    n_samples : int
        Posterior draws used.
    n_data_points : int
        Observations.
    """

    kind: str
    elpd: float
    se: float
    p: float
    pointwise: xr.DataArray
    p_pointwise: xr.DataArray
    warning: bool
    n_samples: int
    n_data_points: int

    @property
    def elpd_i(self) -> xr.DataArray:
        """Pointwise elpd (ArviZ's name)."""
        return self.pointwise

    def __str__(self) -> str:
        return (
            f"Computed from {self.n_samples} posterior samples and "
            f"{self.n_data_points} observations log-likelihood matrix.\n\n"
            f"{'':10}{'Estimate':>10}{'SE':>10}\n"
            f"{'elpd_' + self.kind:10}{self.elpd:10.2f}{self.se:10.2f}\n"
            f"{'p_' + self.kind:10}{self.p:10.2f}{'-':>10}\n"
            + ("\nThere has been a warning during the calculation. Please check the results."
               if self.warning else "")
        )


def _log_lik(result: Any) -> xr.DataArray:
    idata = _idata(result)
    if "log_likelihood" not in idata.children:
        raise ValueError("The posterior tree has no log_likelihood group; refit to get it.")
    return idata["log_likelihood"].to_dataset()[LOG_LIK_VAR].transpose(CHAIN, DRAW, OBS)


def _log_lik_blocks(ll: xr.DataArray,
                    budget: int | None) -> Iterator[tuple[slice, np.ndarray]]:
    """Blocks of observations of the pointwise log-likelihood, as float64 ``(chain, draw, n)``.

    float32 values are widened block by block: every sum over draws is taken in float64.
    Plain NumPy blocks: an xarray block that went through an accessor (``.azstats``) sits in
    a reference cycle (the accessor cached on the object refers back to it) and outlives
    the loop until the cyclic garbage collector runs, so the blocks of a whole matrix could
    pile up (measured: 9.7 MB held after a LOO of a 9.6 MB matrix).
    """
    values = ll.values  # the stored array (no copy)
    n_samples = ll.sizes[CHAIN] * ll.sizes[DRAW]
    for sl in obs_blocks(ll.sizes[OBS], n_samples, 1, budget):
        yield sl, values[:, :, sl].astype(np.float64)


def waic(result: Any, *, budget: int | None = None) -> ELPD:
    """Widely applicable information criterion (Watanabe 2010), on the log scale.

    Computed from the ``log_likelihood`` group (marginal over components), one block
    of observations at a time, in float64:
    ``lppd_n = log mean_s p(x_n | theta_s)``, ``p_n = var_s log p(x_n | theta_s)``,
    ``elpd = sum_n (lppd_n - p_n)``, ``se = sqrt(n var_n(lppd_n - p_n))``.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    budget : int, optional
        Bytes of float64 log-likelihood values per block (default
        :data:`MEMORY_BUDGET`); changes nothing but memory.

    Returns
    -------
    ELPD
        ``elpd``, ``se``, ``p``, ``pointwise``, ``warning``.

    Warns
    -----
    DiagnosticsWarning
        When any ``p_n > 0.4``.
    """
    ll = _log_lik(result)
    s, n = ll.sizes[CHAIN] * ll.sizes[DRAW], ll.sizes[OBS]
    lppd, p_i = np.empty(n), np.empty(n)
    for sl, block in _log_lik_blocks(ll, budget):
        stacked = block.reshape(s, -1)  # a float64 copy of the block: worked on in place
        p_i[sl] = np.var(stacked, axis=0, ddof=1)
        top = stacked.max(axis=0)
        top[~np.isfinite(top)] = 0.0
        stacked -= top
        np.exp(stacked, out=stacked)
        with np.errstate(divide="ignore"):
            lppd[sl] = np.log(stacked.sum(axis=0)) + top - np.log(s)
    elpd_i = lppd - p_i
    warn = bool(np.any(p_i > WAIC_VAR_MAX))
    if warn:
        warnings.warn(
            f"WAIC: {int(np.sum(p_i > WAIC_VAR_MAX))} of {n} points have a posterior variance "
            f"of the log-likelihood above {WAIC_VAR_MAX}; WAIC may be unreliable there "
            "(Vehtari, Gelman and Gabry 2017). Prefer loo().",
            DiagnosticsWarning,
            stacklevel=3,
        )
    coords = {OBS: ll[OBS].values}
    return ELPD(
        kind="waic",
        elpd=float(elpd_i.sum()),
        se=float(np.sqrt(n * np.var(elpd_i, ddof=1))),
        p=float(p_i.sum()),
        pointwise=xr.DataArray(elpd_i, dims=(OBS,), coords=coords, name="elpd_waic"),
        p_pointwise=xr.DataArray(p_i, dims=(OBS,), coords=coords, name="p_waic"),
        warning=warn,
        n_samples=s,
        n_data_points=n,
    )


def _relative_ess(idata: xr.DataTree, n_samples: int) -> float:
    """PSIS's relative efficiency, as :func:`arviz.loo` takes it from the posterior.

    One chain: 1. Several: the mean ESS (``method="mean"``) over every posterior
    value, divided by the number of draws (ArviZ 1.x, ``loo_helper._get_r_eff``).
    """
    post = idata["posterior"].to_dataset()
    if post.sizes[CHAIN] == 1:
        return 1.0
    ess = post.azstats.ess(method="mean")
    return float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / n_samples)


def loo(result: Any, pointwise: bool = True, *, budget: int | None = None) -> Any:
    """Pareto-smoothed importance-sampling leave-one-out cross-validation.

    ArviZ's PSIS-LOO (``arviz_stats``' ``loo`` on each block of observations,
    widened to float64; the relative efficiency from the whole posterior, as
    :func:`arviz.loo` takes it), one block of observations at a time: the same
    ``elpd_i``, ``pareto_k`` and totals as :func:`arviz.loo` on the whole
    matrix, without its ``(chain, draw, obs)`` ``log_weights`` (``None`` here).

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    pointwise : bool, default=True
        Keep ``elpd_i`` and ``pareto_k``.
    budget : int, optional
        Bytes of float64 log-likelihood values per block (default
        :data:`MEMORY_BUDGET`); changes nothing but memory.

    Returns
    -------
    arviz_stats.ELPDDataLOO
        ``elpd``, ``se``, ``p``, ``pareto_k``, ``elpd_i``, ``p_loo_i``, ``good_k``,
        ``warning``.

    Warns
    -----
    DiagnosticsWarning
        When some Pareto k exceed ArviZ's threshold (``good_k``, 0.7 for
        large samples).
    """
    import arviz_stats as azs
    from arviz_stats.base import array_stats

    idata = _idata(result)
    ll = _log_lik(idata)
    s, n = ll.sizes[CHAIN] * ll.sizes[DRAW], ll.sizes[OBS]
    reff = _relative_ess(idata, s)
    elpd_np, k_np, p_np = np.empty(n), np.empty(n), np.empty(n)
    for sl, block in _log_lik_blocks(ll, budget):
        elpd_np[sl], k_np[sl], p_np[sl] = array_stats.loo(block, chain_axis=0, draw_axis=1,
                                                          r_eff=reff)
    elpd, se, p_loo, _ = array_stats.loo_summary(elpd_np, p_np)
    coords = {OBS: ll[OBS].values}
    elpd_i, k_da, p_loo_i = (xr.DataArray(v, dims=(OBS,), coords=coords, name=name)
                             for v, name in ((elpd_np, "elpd_i"), (k_np, "pareto_k"),
                                             (p_np, "p_loo_i")))
    # ArviZ's threshold for the sample size (Vehtari et al. 2024, eq. 13)
    good_k = min(1 - 1 / np.log10(s), PARETO_K_MAX) if s > 1 else PARETO_K_MAX
    k = np.asarray(k_da)
    bad = int(np.sum(k > good_k))
    if bad:
        warnings.warn(
            f"LOO: {bad} of {k.size} points have Pareto k > {good_k:.2f}; the PSIS estimate "
            "is unreliable there. Such points are highly influential: try more draws, "
            "a different number of components, or K-fold cross-validation.",
            DiagnosticsWarning,
            stacklevel=3,
        )
    return azs.ELPDDataLOO(
        elpd=elpd, se=se, p=p_loo, n_samples=s, n_data_points=n, scale="log",
        warning=bool(bad), good_k=good_k, elpd_i=elpd_i if pointwise else None,
        pareto_k=k_da, approx_posterior=False, p_loo_i=p_loo_i if pointwise else None,
    )


# ---------------------------------------------------------------------------
# diagnostics
# ---------------------------------------------------------------------------


def _flat_parameters(post: xr.Dataset) -> dict[str, np.ndarray]:
    """(chain, draw) arrays for every scalar parameter, covariances upper triangle only."""
    out: dict[str, np.ndarray] = {}
    comps = post[COMPONENT].values
    feats = [str(f) for f in post[FEATURE].values]
    w = post["weights"].transpose(CHAIN, DRAW, COMPONENT).values
    m = post["means"].transpose(CHAIN, DRAW, COMPONENT, FEATURE).values
    c = post["covariances"].values
    for k, comp in enumerate(comps):
        out[f"weights[{comp}]"] = w[:, :, k]
    for k, comp in enumerate(comps):
        for j, f in enumerate(feats):
            out[f"means[{comp}, {f}]"] = m[:, :, k, j]
    for k, comp in enumerate(comps):
        for i, fi in enumerate(feats):
            for j in range(i, len(feats)):
                out[f"covariances[{comp}, {fi}, {feats[j]}]"] = c[:, :, k, i, j]
    return out


def diagnostics(result: Any, warn: bool = True) -> pd.DataFrame:
    """Convergence diagnostics on the relabeled draws.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    warn : bool, default=True
        Emit :class:`~bayesgmm.exceptions.DiagnosticsWarning` for R-hat > 1.01,
        bulk or tail ESS < 400, divergences, E-BFMI < 0.3 or unconverged ADVI.

    Returns
    -------
    pandas.DataFrame
        One row per scalar parameter (``weights[k]``, ``means[k, f]``,
        ``covariances[k, f, g]``), columns ``r_hat``, ``ess_bulk``, ``ess_tail``,
        ``mcse_mean``, ``divergences`` and ``label_switches_within_chains``
        (fit-level, the same on every row: how many times, from one draw to
        the next inside a chain, the matching to the EM reference changed,
        i.e. the sampler moved between labelings).  ``attrs`` holds the
        fit-level figures: ``method``, ``n_chains``, ``n_draws``,
        ``divergences``, ``tree_depth_hits``, ``ebfmi`` (per chain),
        ``label_switches_within_chains``, ``draws_relabeled`` (draws whose
        labels differ from the EM reference's: a whole chain that settled in
        another labeling counts here, not as a switch), and for ADVI
        ``elbo_final``, ``advi_converged``, ``advi_steps``, ``vi_pareto_k``.
    """
    import arviz as az
    import arviz_stats as azs

    idata = _idata(result)
    post = idata["posterior"].to_dataset()
    params = _flat_parameters(post)
    names = list(params)
    arr = np.stack([params[n] for n in names], axis=-1)  # (chain, draw, P)
    da = xr.DataArray(arr, dims=(CHAIN, DRAW, "parameter"), coords={"parameter": names})
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        r_hat = np.asarray(az.rhat(da))
        ess_bulk = np.asarray(az.ess(da, method="bulk"))
        ess_tail = np.asarray(az.ess(da, method="tail"))
        mcse = np.asarray(az.mcse(da, method="mean"))
    method = str(post.attrs.get("method", getattr(result, "method", "nuts")))
    attrs: dict[str, Any] = {
        "method": method,
        "n_chains": int(post.sizes[CHAIN]),
        "n_draws": int(post.sizes[DRAW]),
    }
    divergences = 0
    if "sample_stats" in idata.children:
        st = idata["sample_stats"].to_dataset()
        if "diverging" in st:
            divergences = int(st["diverging"].sum())
        if "reached_max_treedepth" in st:
            attrs["tree_depth_hits"] = int(st["reached_max_treedepth"].sum())
        if "energy" in st:
            attrs["ebfmi"] = np.asarray(azs.bfmi(st["energy"].transpose(CHAIN, DRAW),
                                                 sample_dims=[CHAIN, DRAW])).tolist()
    attrs["divergences"] = divergences
    draws_relabeled, switches = 0, 0
    if "relabeling" in idata.children:
        relabeling = idata["relabeling"].to_dataset()
        draws_relabeled = int(relabeling.attrs.get("n_permuted", 0))
        if "permutation" in relabeling:
            switches = switches_within_chains(
                relabeling["permutation"].transpose(CHAIN, DRAW, COMPONENT).values)
    attrs["draws_relabeled"] = draws_relabeled
    attrs["label_switches_within_chains"] = switches
    is_vi = "variational" in idata.children
    if is_vi:
        vi = idata["variational"].to_dataset()
        attrs["elbo_final"] = float(vi.attrs.get("final_elbo", np.nan))
        attrs["advi_converged"] = bool(int(vi.attrs.get("converged", 0)))
        attrs["advi_steps"] = int(vi.attrs.get("n_steps", 0))
        # Pareto k-hat of the importance ratios p/q (Yao et al. 2018); NaN when not recorded
        attrs["vi_pareto_k"] = float(vi.attrs.get("pareto_k", np.nan))
        r_hat = np.full_like(r_hat, np.nan)  # independent draws: R-hat says nothing
    table = pd.DataFrame(
        {
            "r_hat": r_hat,
            "ess_bulk": ess_bulk,
            "ess_tail": ess_tail,
            "mcse_mean": mcse,
            "divergences": divergences,
            "label_switches_within_chains": switches,
        },
        index=pd.Index(names, name="parameter"),
    )
    table.attrs.update(attrs)
    if warn:
        _warn_diagnostics(table, is_vi)
    return table


def vi_pareto_k_problem(k_hat: float) -> str | None:
    """What an ADVI fit's Pareto k-hat says is wrong with it, or ``None`` if nothing.

    Above :data:`PARETO_K_MAX`, infinite (``p = 0`` at a draw of ``q``) or NaN
    (not recorded, or PSIS could not fit the ratios' tail), the Gaussian
    approximation may miss posterior mass (Yao et al. 2018).

    Examples
    --------
    >>> vi_pareto_k_problem(0.3) is None
    True
    >>> vi_pareto_k_problem(1.6)[:25]
    'Pareto k-hat 1.60 > 0.7 ('
    """
    k_hat = float(k_hat)
    if k_hat <= PARETO_K_MAX:
        return None
    said = (f"{k_hat:.2f} > {PARETO_K_MAX}" if not np.isnan(k_hat)
            else "not available (not recorded, or its tail fit failed)")
    return (f"Pareto k-hat {said} (Yao et al. 2018): the Gaussian approximation may miss "
            "posterior mass, so its means may be off and its intervals too narrow; do not "
            "read them as the posterior's. Use method='nuts'.")


def _warn_diagnostics(table: pd.DataFrame, is_vi: bool) -> None:
    a = table.attrs
    if is_vi:
        if not a.get("advi_converged", True):
            warnings.warn(
                f"ADVI did not converge in {a.get('advi_steps')} steps: increase n_steps "
                "(advi_kwargs), or use method='nuts' for a full posterior.",
                DiagnosticsWarning, stacklevel=3,
            )
        problem = vi_pareto_k_problem(a.get("vi_pareto_k", np.nan))
        if problem:
            warnings.warn(f"ADVI: {problem}", DiagnosticsWarning, stacklevel=3)
        return
    bad_rhat = table.index[table["r_hat"] > RHAT_MAX].tolist()
    if bad_rhat:
        warnings.warn(
            f"R-hat > {RHAT_MAX} for {len(bad_rhat)} parameter(s) (worst "
            f"{table['r_hat'].max():.3f} at {table['r_hat'].idxmax()}): the chains disagree. "
            "Run more tune/draws, more chains, or reconsider n_components (an empty or "
            "duplicated component does not converge).",
            DiagnosticsWarning, stacklevel=3,
        )
    low = table.index[(table["ess_bulk"] < ESS_MIN) | (table["ess_tail"] < ESS_MIN)].tolist()
    if low:
        warnings.warn(
            f"ESS < {ESS_MIN} for {len(low)} parameter(s) (lowest bulk "
            f"{table['ess_bulk'].min():.0f}, tail {table['ess_tail'].min():.0f}): increase "
            "draws or chains before trusting tail quantities.",
            DiagnosticsWarning, stacklevel=3,
        )
    if a.get("divergences", 0):
        warnings.warn(
            f"{a['divergences']} divergent transition(s): the sampler met regions it cannot "
            "explore; results may be biased. Raise target_accept (e.g. 0.95), check for "
            "components with almost no points, or increase reg_covar.",
            DiagnosticsWarning, stacklevel=3,
        )
    low_bfmi = [v for v in a.get("ebfmi", []) if v < 0.3]
    if low_bfmi:
        warnings.warn(
            f"E-BFMI below 0.3 in {len(low_bfmi)} chain(s): the momentum resampling explores "
            "the energy poorly. Consider fewer components or more informative priors.",
            DiagnosticsWarning, stacklevel=3,
        )
