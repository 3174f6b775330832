"""Posterior summaries of Bayesian mixture fits (NumPy, xarray and ArviZ; no PyMC).

Everything here reads the draws stored in a :class:`~bayesgmm.results.GMMResult`
(or its ``idata`` tree): per-draw responsibilities and their credible
intervals, assignment uncertainty per point, WAIC (computed here: ArviZ 1.x has
no ``waic``), PSIS-LOO through :func:`arviz.loo`, and convergence diagnostics
on the relabeled draws.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.special import logsumexp

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
    "log_likelihood_and_responsibilities",
    "loo",
    "pointwise_log_likelihood",
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


def _logsumexp_last(a: np.ndarray, keepdims: bool = False) -> np.ndarray:
    """Log-sum-exp over the last axis (plain NumPy: faster than SciPy's for small K)."""
    m = np.max(a, axis=-1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(a - m), axis=-1, keepdims=True)) + m
    return out if keepdims else out[..., 0]


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
        As :func:`pointwise_log_likelihood`.
    resp_mean : ndarray of shape (n_obs, n_components)
        Mean over draws of :func:`draw_responsibilities`.

    Examples
    --------
    >>> ll, r = log_likelihood_and_responsibilities(
    ...     np.zeros((2, 1)), np.full((1, 2), 0.5), np.zeros((1, 2, 1)), np.ones((1, 2, 1, 1)))
    >>> ll.shape, r.tolist()
    ((1, 2), [[0.5, 0.5], [0.5, 0.5]])
    """
    lp = component_log_density(X, weights, means, covariances)
    ll = _logsumexp_last(lp, keepdims=True)
    resp_mean = np.exp(lp - ll).mean(axis=0)
    return ll[..., 0], resp_mean


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
    return _logsumexp_last(component_log_density(X, weights, means, covariances))


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
    lp = component_log_density(X, weights, means, covariances)
    return np.exp(lp - _logsumexp_last(lp, keepdims=True))


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


def _responsibility_draws(result: Any) -> xr.DataArray:
    idata = _idata(result)
    w, m, c = _stacked_draws(idata)
    X = _observed(idata)
    post = idata["posterior"].to_dataset()
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


def responsibility_interval(result: Any, prob: float = 0.94) -> xr.DataArray:
    """Equal-tailed credible interval of every responsibility.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    prob : float, default=0.94
        Mass inside the interval, in (0, 1).

    Returns
    -------
    xarray.DataArray
        Dims ``(obs, component, ci_bound)``, ``ci_bound`` = ``["lower", "upper"]``;
        attrs ``ci_kind="eti"`` and ``ci_prob``.
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in the open interval (0, 1); got {prob!r}.")
    resp = _responsibility_draws(result)
    tail = (1.0 - prob) / 2.0
    q = resp.quantile([tail, 1.0 - tail], dim=_SAMPLE_DIMS)
    q = q.rename(quantile="ci_bound").assign_coords(ci_bound=["lower", "upper"])
    out = q.transpose(OBS, COMPONENT, "ci_bound")
    out.attrs.update({"ci_kind": "eti", "ci_prob": float(prob)})
    return out.rename("responsibility_interval")


def assignment_uncertainty(result: Any, prob: float = 0.94) -> pd.DataFrame:
    """Per point: assigned component, its probability, its interval and the entropy.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    prob : float, default=0.94
        Mass of the credible interval of the assignment probability.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``obs``: ``label`` (component with the highest posterior-mean
        responsibility), ``probability`` (that responsibility), ``lower`` and
        ``upper`` (its equal-tailed interval over draws) and ``entropy`` (nats,
        of the posterior-mean responsibilities; 0 = certain, ``log K`` = no idea).
    """
    resp = _responsibility_draws(result)
    mean = resp.mean(_SAMPLE_DIMS).values
    labels = mean.argmax(axis=1)
    n = mean.shape[0]
    chosen = resp.values[..., np.arange(n), labels].reshape(-1, n)
    tail = (1.0 - prob) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.where(mean > 0, mean * np.log(mean), 0.0).sum(axis=1)
    return pd.DataFrame(
        {
            "label": labels,
            "probability": mean[np.arange(n), labels],
            "lower": np.quantile(chosen, tail, axis=0),
            "upper": np.quantile(chosen, 1.0 - tail, axis=0),
            "entropy": entropy,
        },
        index=pd.Index(np.arange(n), name=OBS),
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
    return idata["log_likelihood"].to_dataset()[LOG_LIK_VAR]


def waic(result: Any) -> ELPD:
    """Widely applicable information criterion (Watanabe 2010), on the log scale.

    Computed from the ``log_likelihood`` group (marginal over components):
    ``lppd_n = log mean_s p(x_n | theta_s)``, ``p_n = var_s log p(x_n | theta_s)``,
    ``elpd = sum_n (lppd_n - p_n)``, ``se = sqrt(n var_n(lppd_n - p_n))``.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).

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
    stacked = ll.stack(__sample__=_SAMPLE_DIMS).transpose("__sample__", OBS).values
    s, n = stacked.shape
    lppd = logsumexp(stacked, axis=0) - np.log(s)
    p_i = np.var(stacked, axis=0, ddof=1)
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


def loo(result: Any, pointwise: bool = True) -> Any:
    """Pareto-smoothed importance-sampling leave-one-out cross-validation.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (or its ``idata``).
    pointwise : bool, default=True
        Keep ``elpd_i`` and ``pareto_k``.

    Returns
    -------
    arviz ELPDData
        ``elpd``, ``se``, ``p``, ``pareto_k``, ``warning`` (from :func:`arviz.loo`).

    Warns
    -----
    DiagnosticsWarning
        When some Pareto k exceed ArviZ's threshold (``good_k``, 0.7 for
        large samples).
    """
    import arviz as az

    idata = _idata(result)
    _log_lik(idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        out = az.loo(idata, pointwise=True, var_name=LOG_LIK_VAR)
    k = np.asarray(out.pareto_k)
    good_k = getattr(out, "good_k", 0.7)
    bad = int(np.sum(k > good_k))
    if bad:
        warnings.warn(
            f"LOO: {bad} of {k.size} points have Pareto k > {good_k:.2f}; the PSIS estimate "
            "is unreliable there. Such points are highly influential: try more draws, "
            "a different number of components, or K-fold cross-validation.",
            DiagnosticsWarning,
            stacklevel=3,
        )
    if not pointwise:
        out.elpd_i = None
    return out


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
