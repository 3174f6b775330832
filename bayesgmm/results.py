"""The one results object every fit returns: :class:`GMMResult`.

EM fits hold point estimates; Bayesian fits hold posterior draws (dims
``chain, draw`` in front) and the whole posterior as an ``xarray.DataTree``
in :attr:`GMMResult.idata`. Information criteria use the point estimate
(the posterior mean for Bayesian fits). Saving and loading go through
netCDF (``h5netcdf``), never pickle.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import html
import io
import json
import os
import re
import secrets
import shutil
import sys
import warnings
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm import criteria
from bayesgmm._constants import (
    CHAIN,
    COMPONENT,
    DRAW,
    FEATURE,
    FEATURE_BIS,
    FILE_FORMAT_VERSION,
    OBS,
)
from bayesgmm._validation import check_X, validate_int, validate_prob
from bayesgmm.exceptions import DifferentModelError, UnverifiedFileWarning

__all__ = ["GMMResult", "load"]

_SAMPLE_DIMS = (CHAIN, DRAW)
_ESTIMATE_GROUP = "bayesgmm"
_REQUIRED_VARIABLES = ("weights", "means", "covariances", "responsibilities")
_MISSING = object()


def _package_version() -> str:
    try:
        return version("bayesgmm")
    except PackageNotFoundError:  # running from a source tree
        return "unknown"


@dataclass(repr=False, eq=False)
class GMMResult:
    """Parameters, responsibilities and fit statistics of a Gaussian mixture.

    Parameters
    ----------
    weights : xarray.DataArray
        Mixing weights, dims ``(component,)``; Bayesian fits ``(chain, draw, component)``.
    means : xarray.DataArray
        Component means, dims ``(..., component, feature)``.
    covariances : xarray.DataArray
        Full covariance matrices whatever the ``covariance_type``, dims
        ``(..., component, feature, feature_bis)``.
    responsibilities : xarray.DataArray
        Probability of each component for each observation, dims
        ``(obs, component)``; the posterior mean for Bayesian fits.
    log_likelihood : float
        Total log-likelihood of the data at the point estimate (the
        posterior mean for Bayesian fits).
    covariance_type : str
        Covariance parametrisation that was fitted: "full", "tied", "diag",
        "spherical", or the name of one of the 14 mclust models ("EII" ...
        "VVV", :mod:`bayesgmm.parsimonious`; ``covariances`` are then full
        matrices of that model, and ``n_parameters`` counts as mclust does).
    method : str, default="em"
        "em", "advi", "fullrank_advi" or "nuts".
    config : dict, optional
        JSON-serialisable settings of the estimator that made the fit.
    idata : xarray.DataTree, optional
        Bayesian fits: posterior, sample_stats, log_likelihood, observed_data.
    converged : bool, default=True
        Whether the fitting procedure reported convergence.
    n_iter : int, optional
        EM iterations (or ADVI steps) used.
    data : xarray.DataArray, optional
        The data the model was fitted to, dims ``(obs, feature)``; used by
        plots and reports. Bayesian fits also keep it in ``idata.observed_data``.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> result = bg.EMGMM(n_components=2, random_state=0).fit(X).result_
    >>> result.weights.dims
    ('component',)
    >>> round(result.bic(), 1) < round(bg.EMGMM(1).fit(X).result_.bic(), 1)
    True
    """

    weights: xr.DataArray
    means: xr.DataArray
    covariances: xr.DataArray
    responsibilities: xr.DataArray
    log_likelihood: float
    covariance_type: str
    method: str = "em"
    config: dict[str, Any] = field(default_factory=dict)
    idata: xr.DataTree | None = None
    converged: bool = True
    n_iter: int | None = None
    data: xr.DataArray | None = None

    # ------------------------------------------------------------------
    # Shape and point estimate
    # ------------------------------------------------------------------

    @property
    def n_components(self) -> int:
        """Number of mixture components K."""
        return int(self.weights.sizes[COMPONENT])

    @property
    def n_features(self) -> int:
        """Number of features D."""
        return int(self.means.sizes[FEATURE])

    @property
    def n_obs(self) -> int:
        """Number of observations the model was fitted to."""
        return int(self.responsibilities.sizes[OBS])

    @property
    def feature_names(self) -> list[str]:
        """Names of the features, in order."""
        return [str(v) for v in self.means[FEATURE].values]

    @property
    def observed(self) -> xr.DataArray | None:
        """The fitted data, dims ``(obs, feature)``, or ``None`` if it was not kept."""
        if self.data is not None:
            return self.data
        if self.idata is not None and "observed_data" in self.idata.children:
            for var in self.idata["observed_data"].to_dataset().data_vars.values():
                if set(var.dims) == {OBS, FEATURE}:
                    return var.transpose(OBS, FEATURE)
        return None

    @property
    def is_bayesian(self) -> bool:
        """Whether the parameters are posterior draws (dims ``chain, draw``)."""
        return CHAIN in self.weights.dims

    def point_estimate(self) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
        """Weights, means and covariances as single values.

        Returns
        -------
        weights, means, covariances : xarray.DataArray
            The EM estimate, or the posterior mean over ``chain`` and ``draw``.
        """
        arrays = (self.weights, self.means, self.covariances)
        if not self.is_bayesian:
            return arrays
        return tuple(a.mean(_SAMPLE_DIMS) for a in arrays)

    @property
    def labels(self) -> xr.DataArray:
        """Most probable component of each observation, dims ``(obs,)``."""
        return self.responsibilities.argmax(COMPONENT).rename("labels")

    @property
    def n_parameters(self) -> int:
        """Number of free parameters (weights, means and covariances)."""
        return criteria.n_parameters(self.n_components, self.n_features, self.covariance_type)

    def permute_components(self, perm: Any) -> GMMResult:
        """A copy whose components are reordered everywhere.

        Weights, means, covariances (every posterior draw), responsibilities,
        hence :attr:`labels`, and every group of :attr:`idata` with a
        ``component`` dim (the posterior and the relabeling permutation) are
        reordered; the likelihood, the criteria and the data do not change.

        Parameters
        ----------
        perm : array-like of int, shape (n_components,)
            New component ``k`` is this result's component ``perm[k]``; a
            permutation of ``0, ..., n_components - 1``.

        Returns
        -------
        GMMResult
            A new result (this one is unchanged); the ``component``
            coordinate is again ``0, ..., n_components - 1``.

        Raises
        ------
        ValueError
            If ``perm`` is not a permutation of the components.

        Examples
        --------
        >>> import bayesgmm as bg
        >>> fit = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
        >>> swapped = fit.permute_components([1, 0])
        >>> bool((swapped.means.values == fit.means.values[::-1]).all())
        True
        >>> bool((swapped.labels.values == 1 - fit.labels.values).all())
        True
        """
        k = self.n_components
        order = np.asarray(perm)
        if (order.shape != (k,) or order.dtype.kind not in "iu"
                or not np.array_equal(np.sort(order), np.arange(k))):
            raise ValueError(f"perm must be a permutation of 0..{k - 1} (one entry per "
                             f"component), got {np.asarray(perm).tolist()!r}.")

        def reorder(obj):
            if COMPONENT not in obj.dims:
                return obj
            return obj.isel({COMPONENT: order}).assign_coords({COMPONENT: np.arange(k)})

        idata = self.idata
        if idata is not None:
            idata = xr.DataTree.from_dict(
                {node.path: reorder(node.to_dataset(inherit=False)) for node in idata.subtree})
        return replace(
            self,
            weights=reorder(self.weights),
            means=reorder(self.means),
            covariances=reorder(self.covariances),
            responsibilities=reorder(self.responsibilities),
            idata=idata,
        )

    def _state(self):
        from bayesgmm import em

        weights, means, covs = (a.values for a in self.point_estimate())
        return em.EMState(weights, means, covs, em.precision_cholesky(covs, "full"), "full")

    def _check_new_data(self, X: Any) -> np.ndarray:
        arr = check_X(X, check_variance=False, allow_nan=True)  # NaN: a missing entry
        if arr.shape[1] != self.n_features:
            raise ValueError(f"X has {arr.shape[1]} features, but this result was fitted "
                             f"with {self.n_features}: {self.feature_names}.")
        return arr

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities of new data under the point estimate.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data with the fitted features, in the same order.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            For Bayesian fits these use the posterior-mean parameters; the
            estimator's ``predict_proba`` averages over the posterior instead.
        """
        from bayesgmm import em

        return em.e_step(self._check_new_data(X), self._state())[1]

    def impute(self, X: Any = None, *, draws: int | None = None,
               random_state: Any = None) -> xr.DataArray:
        """The data with every missing entry filled in, once or as multiple imputations.

        Without ``draws``: the conditional expectation ``E[x_M | x_O] = sum_k
        r_k(x_O) E[x_M | x_O, k]``, the components' Gaussian regressions of the
        missing coordinates on the observed ones weighted by the
        responsibilities given the observed ones; under EM's maximum, or for a
        Bayesian fit averaged over (at most 200, evenly spaced) posterior
        draws, i.e. the posterior predictive mean.

        With ``draws=m`` (Bayesian fits): ``m`` completed data sets, each from
        one posterior draw (evenly spaced over chains and draws): a component
        drawn from each incomplete row's responsibilities, then its missing
        entries from that component's conditional Gaussian. Their spread
        carries both the parameters' uncertainty and the entries' own (proper
        multiple imputation, Rubin 1987).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), optional
            Data to complete; default the fitted data.
        draws : int, optional
            Number of completed data sets (Bayesian fits only).
        random_state : int, Generator or None, default=None
            Seed for ``draws``.

        Returns
        -------
        xarray.DataArray
            Dims ``(obs, feature)``, or ``(draw, obs, feature)`` with ``draws``;
            data units; observed entries unchanged. ``attrs["n_imputed"]``
            counts the entries filled in and the ``imputed`` coordinate (bool,
            ``(obs, feature)``) marks them.

        Examples
        --------
        >>> import numpy as np, bayesgmm as bg
        >>> X = bg.datasets.load_faithful().to_numpy()
        >>> X[0, 1] = np.nan
        >>> done = bg.EMGMM(2, random_state=0).fit(X).result_.impute()
        >>> int(done.attrs["n_imputed"]), bool(np.isfinite(done.values).all())
        (1, True)
        """
        from bayesgmm import em_missing

        if X is None:
            if self.observed is None:
                raise ValueError("impute: this result keeps no data; pass X.")
            arr = np.asarray(self.observed.transpose(OBS, FEATURE).values, dtype=float)
        else:
            arr = self._check_new_data(X)
        missing = np.isnan(arr)
        coords = {OBS: np.arange(arr.shape[0]), FEATURE: self.feature_names}
        attrs = {"n_imputed": int(missing.sum())}
        if draws is not None:
            if not self.is_bayesian:
                raise ValueError(
                    f"impute(draws={draws!r}) needs posterior draws, but this is a "
                    f"{self.method!r} fit: multiple imputation from one point estimate "
                    "ignores the parameters' uncertainty. Use impute() for the conditional "
                    "expectation, or fit BayesGMM.")
            m = validate_int(draws, "draws")
            rng = np.random.default_rng(random_state)
            sets = (em_missing.sample_missing(arr, self._draw_states(m), rng) if missing.any()
                    else np.broadcast_to(arr, (m, *arr.shape)).copy())
            out = xr.DataArray(sets, dims=(DRAW, OBS, FEATURE),
                               coords={DRAW: np.arange(m), **coords}, name="imputed",
                               attrs=attrs)
        else:
            if not missing.any():
                done = arr.copy()
            elif self.is_bayesian:
                n_draws = self.weights.sizes[CHAIN] * self.weights.sizes[DRAW]
                done = em_missing.conditional_mean(arr, self._draw_states(min(200, n_draws)))
            else:
                done = em_missing.conditional_mean(arr, self._state())
            out = xr.DataArray(done, dims=(OBS, FEATURE), coords=coords, name="imputed",
                               attrs=attrs)
        return out.assign_coords(imputed=((OBS, FEATURE), missing))

    def _draw_states(self, at_most: int) -> list:
        """Mixtures of at most ``at_most`` posterior draws, evenly spaced (chain-major)."""
        from bayesgmm import em

        w = self.weights.transpose(CHAIN, DRAW, COMPONENT).values
        mu = self.means.transpose(CHAIN, DRAW, COMPONENT, FEATURE).values
        cov = self.covariances.transpose(CHAIN, DRAW, COMPONENT, FEATURE, FEATURE_BIS).values
        k, d = mu.shape[-2:]
        w, mu, cov = w.reshape(-1, k), mu.reshape(-1, k, d), cov.reshape(-1, k, d, d)
        n_total = w.shape[0]
        if at_most <= n_total:
            picks = np.linspace(0, n_total - 1, at_most).round().astype(int)
        else:  # more data sets than draws: the draws in turn
            picks = np.resize(np.arange(n_total), at_most)
        return [em.EMState(w[i], mu[i], cov[i], em.precision_cholesky(cov[i], "full"), "full")
                for i in picks]

    def predict(self, X: Any) -> np.ndarray:
        """Most probable component of each row of new data (see :meth:`predict_proba`)."""
        return self.predict_proba(X).argmax(axis=1)

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-density of new data under the point estimate, shape (n_samples,)."""
        from bayesgmm import em

        return em.e_step(self._check_new_data(X), self._state())[0]

    # ------------------------------------------------------------------
    # Information criteria (lower is better)
    # ------------------------------------------------------------------

    def aic(self) -> float:
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
        return criteria.aic(self.log_likelihood, self.n_parameters)

    def bic(self) -> float:
        """Bayesian information criterion, ``-2 log L + p log n`` (lower is better)."""
        return criteria.bic(self.log_likelihood, self.n_parameters, self.n_obs)

    def icl(self) -> float:
        """Integrated completed likelihood: BIC plus twice the hard-assignment entropy.

        ``ICL = BIC - 2 sum_n log r_{n, z_n}`` with ``z_n`` the most probable
        component (Biernacki, Celeux and Govaert, 2000); lower is better.
        """
        return criteria.icl(
            self.log_likelihood, self.n_parameters, self.responsibilities.values
        )

    # ------------------------------------------------------------------
    # Bayesian posterior (delegated to bayesgmm.posterior)
    # ------------------------------------------------------------------

    def _require_posterior(self, what: str) -> None:
        if not self.is_bayesian or self.idata is None:
            raise ValueError(
                f"{what}() needs posterior draws, but this result came from method="
                f"{self.method!r}. Fit with bayesgmm.BayesGMM to get it."
            )

    def responsibility_interval(self, prob: float = 0.94) -> xr.DataArray:
        """Equal-tailed credible interval of every responsibility.

        Parameters
        ----------
        prob : float, default=0.94
            Probability mass inside the interval.

        Returns
        -------
        xarray.DataArray
            Dims ``(obs, component, ci_bound)`` with ``ci_bound`` = lower, upper.
        """
        prob = validate_prob(prob)
        self._require_posterior("responsibility_interval")
        from bayesgmm import posterior

        return posterior.responsibility_interval(self, prob)

    def assignment_uncertainty(self, prob: float = 0.94) -> pd.DataFrame:
        """Per observation: assigned component, its probability and the entropy.

        Parameters
        ----------
        prob : float, default=0.94
            Bayesian fits: mass of the credible interval of the assignment
            probability (columns ``lower`` and ``upper``).

        Returns
        -------
        pandas.DataFrame
            Indexed by observation, columns ``label``, ``probability``,
            ``entropy`` (and ``lower``, ``upper`` for Bayesian fits); sort by
            ``probability`` to list the uncertain points.
        """
        prob = validate_prob(prob)
        if self.is_bayesian and self.idata is not None:
            from bayesgmm import posterior

            return posterior.assignment_uncertainty(self, prob)
        resp = self.responsibilities.values
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(resp > 0, resp * np.log(resp), 0.0).sum(axis=1)
        labels = resp.argmax(axis=1)
        return pd.DataFrame(
            {
                "label": labels,
                "probability": resp[np.arange(len(labels)), labels],
                "entropy": entropy,
            },
            index=pd.Index(self.responsibilities[OBS].values, name=OBS),
        )

    def waic(self):
        """Widely applicable information criterion from the pointwise log-likelihood.

        Returns
        -------
        bayesgmm.posterior.ELPD
            ``elpd``, ``se``, ``p``, ``pointwise`` and ``warning``.
        """
        self._require_posterior("waic")
        from bayesgmm import posterior

        return posterior.waic(self)

    def loo(self):
        """Pareto-smoothed importance-sampling leave-one-out (``arviz.loo``).

        Returns
        -------
        ELPDData
            ArviZ's result: ``elpd``, ``se``, ``p``, ``pareto_k``, ``warning``.
        """
        self._require_posterior("loo")
        from bayesgmm import posterior

        return posterior.loo(self)

    def diagnostics(self, warn: bool = True) -> pd.DataFrame:
        """Convergence diagnostics of the fit.

        Parameters
        ----------
        warn : bool, default=True
            Bayesian fits: emit a ``DiagnosticsWarning`` for each problem found.

        Returns
        -------
        pandas.DataFrame
            For EM one row with ``converged`` and ``n_iter``; for Bayesian
            fits one row per parameter with ``r_hat``, ``ess_bulk``,
            ``ess_tail``, ``mcse_mean`` and fit-level figures in ``attrs``.
        """
        if not self.is_bayesian:
            return pd.DataFrame(
                {"converged": [self.converged], "n_iter": [self.n_iter],
                 "log_likelihood": [self.log_likelihood]},
                index=pd.Index([self.method], name="method"),
            )
        from bayesgmm import posterior

        return posterior.diagnostics(self, warn=warn)

    def posterior_predictive(self, n: int | None = None, *, draws: int | None = None,
                             random_state: Any = None) -> xr.DataArray:
        """Replicated data sets, one per posterior draw, in data units.

        For every kept draw of the weights, means and covariances, ``n`` rows
        are simulated from that draw's mixture
        (:func:`bayesgmm.bayes.spec.simulate_mixture`, the package's one
        simulation). Pooled, the rows follow the posterior predictive
        distribution; per draw, they are what a posterior predictive check
        compares with the data.

        Parameters
        ----------
        n : int, optional
            Rows per data set; by default as many as the fitted data.
        draws : int, optional
            Simulate from at most this many draws of each chain, evenly spaced
            (thinning). By default every draw: the result holds
            ``chains * draws * n * n_features`` numbers (8 bytes each; 4000
            draws of a 10 000 x 5 data set are 1.6 GB), so pass ``draws`` for
            large data.
        random_state : int, numpy.random.Generator or None, default=None
            Seed of the simulation; the same seed gives the same data sets.

        Returns
        -------
        xarray.DataArray
            Dims ``(chain, draw, obs, feature)``; ``draw`` keeps the indices
            of the posterior draws used and ``feature`` the feature names.

        Raises
        ------
        ValueError
            For an EM fit (method "em"): it has no posterior draws. Its point
            estimate simulates with :meth:`bayesgmm.EMGMM.sample`.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> post = {"weights": ((CHAIN, DRAW, COMPONENT), np.ones((1, 3, 1))),
        ...         "means": ((CHAIN, DRAW, COMPONENT, FEATURE), np.zeros((1, 3, 1, 1))),
        ...         "covariances": ((CHAIN, DRAW, COMPONENT, FEATURE, FEATURE_BIS),
        ...                         np.ones((1, 3, 1, 1, 1)))}
        >>> ds = xr.Dataset(post, coords={FEATURE: ["x"], FEATURE_BIS: ["x"]})
        >>> fit = GMMResult(ds["weights"], ds["means"], ds["covariances"],
        ...                 xr.DataArray(np.ones((4, 1)), dims=(OBS, COMPONENT)), 0.0,
        ...                 "full", method="nuts", idata=xr.DataTree(ds))
        >>> dict(fit.posterior_predictive(n=5, random_state=0).sizes)
        {'chain': 1, 'draw': 3, 'obs': 5, 'feature': 1}
        """
        if not self.is_bayesian:
            raise ValueError(
                f"posterior_predictive() needs posterior draws, but this result came from "
                f"method={self.method!r}. Fit with bayesgmm.BayesGMM, or simulate from the "
                f"EM estimate with EMGMM.sample(n)."
            )
        from bayesgmm.bayes.spec import simulate_mixture
        from bayesgmm.posterior import OBSERVED_VAR

        n = self.n_obs if n is None else validate_int(n, "n")
        weights, means, covs = (a.transpose(CHAIN, DRAW, COMPONENT, ...)
                                for a in (self.weights, self.means, self.covariances))
        if draws is not None:
            draws = validate_int(draws, "draws")
            total = weights.sizes[DRAW]
            keep = np.unique(np.linspace(0, total - 1, min(draws, total)).round().astype(int))
            weights, means, covs = (a.isel({DRAW: keep}) for a in (weights, means, covs))
        rows = simulate_mixture(weights.values, means.values, covs.values, n, random_state)
        return xr.DataArray(
            rows, dims=(CHAIN, DRAW, OBS, FEATURE),
            coords={CHAIN: weights[CHAIN].values, DRAW: weights[DRAW].values,
                    OBS: np.arange(n), FEATURE: self.feature_names},
            name=OBSERVED_VAR,
            attrs={"method": self.method, "kind": "posterior predictive"},
        )

    def n_clusters(self, random_state: int | None = 0) -> pd.Series:
        """Posterior of the number of non-empty components ``K+`` (sparse finite mixtures).

        For every posterior draw each observation is allocated to a component
        drawn from its responsibilities, and the occupied components are
        counted (Malsiner-Walli, Fruhwirth-Schnatter and Grun 2016).  Meant for
        ``BayesGMM(n_components=K_max, priors={"weights_concentration":
        "sparse"})``; see docs/n_clusters.md and
        :mod:`bayesgmm.bayes.n_clusters` (diagnostics of ``K+`` and ``alpha``,
        identified clusters).

        Parameters
        ----------
        random_state : int or None, default=0
            Seed of the allocations.

        Returns
        -------
        pandas.Series
            Index ``n_clusters`` (values of ``K+``), values the posterior
            probabilities (summing to 1); ``attrs``: ``n_draws``, ``mode``,
            ``n_components``.
        """
        self._require_posterior("n_clusters")
        from bayesgmm.bayes import n_clusters

        return n_clusters.n_clusters(self, random_state)

    # ------------------------------------------------------------------
    # Tables and display
    # ------------------------------------------------------------------

    def summary(self, prob: float = 0.89) -> pd.DataFrame:
        """One row per component and parameter.

        Parameters
        ----------
        prob : float, default=0.89
            Bayesian fits: mass of the equal-tailed credible interval
            (ArviZ's default).

        Returns
        -------
        pandas.DataFrame
            Index ``(component, parameter)``; EM: column ``estimate``;
            Bayesian: ``mean``, ``sd``, ``lower``, ``upper``.
        """
        prob = validate_prob(prob)
        names = self.feature_names
        rows = []
        cov_kind = "var" if self.covariance_type in ("diag", "spherical") else "cov"
        for k in range(self.n_components):
            entries = [("weight", self.weights.isel(component=k))]
            entries += [(f"mean[{f}]", self.means.isel(component=k, feature=j))
                        for j, f in enumerate(names)]
            for i, fi in enumerate(names):
                for j in range(i, len(names)):
                    if cov_kind == "var" and i != j:
                        continue
                    label = f"var[{fi}]" if i == j else f"cov[{fi},{names[j]}]"
                    entries.append(
                        (label, self.covariances.isel(component=k, feature=i, feature_bis=j))
                    )
            for name, values in entries:
                rows.append(((k, name), values))
        index = pd.MultiIndex.from_tuples([r[0] for r in rows], names=[COMPONENT, "parameter"])
        if not self.is_bayesian:
            return pd.DataFrame({"estimate": [float(v) for _, v in rows]}, index=index)
        tail = (1 - prob) / 2
        draws = np.stack([v.values.reshape(-1) for _, v in rows])
        table = pd.DataFrame(
            {
                "mean": draws.mean(axis=1),
                "sd": draws.std(axis=1, ddof=1),
                "lower": np.quantile(draws, tail, axis=1),
                "upper": np.quantile(draws, 1 - tail, axis=1),
            },
            index=index,
        )
        table.attrs["ci_prob"] = prob
        return table

    def plot(self, ax=None, **kwargs):
        """Data coloured by component with covariance ellipses and uncertainty.

        See :func:`bayesgmm.plotting.plot_clusters` for the options.

        Returns
        -------
        matplotlib.axes.Axes
        """
        from bayesgmm.plotting import plot_clusters

        return plot_clusters(self, ax=ax, **kwargs)

    def _headline(self) -> list[tuple[str, str]]:
        return [
            ("method", self.method),
            ("components", str(self.n_components)),
            ("covariance_type", self.covariance_type),
            ("observations", str(self.n_obs)),
            ("features", ", ".join(self.feature_names)),
            ("log-likelihood", f"{self.log_likelihood:.3f}"),
            ("AIC / BIC / ICL", f"{self.aic():.2f} / {self.bic():.2f} / {self.icl():.2f}"),
            ("converged", str(self.converged)),
        ]

    def _component_table(self) -> pd.DataFrame:
        weights, means, _ = self.point_estimate()
        table = pd.DataFrame(means.values, columns=[f"mean[{f}]" for f in self.feature_names])
        table.insert(0, "weight", weights.values)
        table.index.name = COMPONENT
        return table

    def __repr__(self) -> str:
        width = max(len(k) for k, _ in self._headline())
        lines = ["GMMResult"] + [f"  {k:<{width}}  {v}" for k, v in self._headline()]
        table = self._component_table().to_string(float_format=lambda v: f"{v:.4g}")
        lines += ["", *("  " + line for line in table.splitlines())]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
            f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
            for k, v in self._headline()
        )
        table = self._component_table().to_html(float_format=lambda v: f"{v:.4g}")
        return (
            f"<pre class='bayesgmm-text-repr-fallback' style='display:none'>"
            f"{html.escape(repr(self))}</pre>"
            f"<div class='bayesgmm-result'><strong>GMMResult</strong>"
            f"<table>{rows}</table>{table}</div>"
        )

    # ------------------------------------------------------------------
    # Persistence
    # ------------------------------------------------------------------

    def _attrs(self) -> dict[str, Any]:
        config = json.dumps(self.config, sort_keys=True, default=_json_default)
        attrs = {
            "bayesgmm_format_version": FORMAT_VERSION,
            "bayesgmm_version": _package_version(),
            "covariance_type": self.covariance_type,
            "method": self.method,
            "config": config,
            "log_likelihood": float(self.log_likelihood),
            "converged": int(bool(self.converged)),
            "n_iter": -1 if self.n_iter is None else int(self.n_iter),
        }
        attrs["id"] = _config_id(attrs)
        return attrs

    def _groups(self) -> dict[str, xr.Dataset]:
        """The groups of the file: root attributes, the estimate, then ``idata``'s groups.

        Parameters that are the very posterior draws in ``idata.posterior`` are
        not copied into ``/bayesgmm``; its attribute ``stored_in_posterior``
        lists them.
        """
        posterior = None
        if self.idata is not None and "posterior" in self.idata.children:
            posterior = self.idata["posterior"].to_dataset()
        estimate: dict[str, xr.DataArray] = {}
        shared = []
        for name in _POSTERIOR_VARIABLES:
            array = getattr(self, name)
            if posterior is not None and name in posterior and array.identical(posterior[name]):
                shared.append(name)
            else:
                estimate[name] = array
        estimate["responsibilities"] = self.responsibilities
        if self.data is not None:
            estimate["data"] = self.data
        groups = {
            "/": xr.Dataset(attrs=self._attrs()),
            _ESTIMATE_GROUP: xr.Dataset(estimate,
                                        attrs={_SHARED_ATTR: json.dumps(shared)}),
        }
        if self.idata is not None:
            for child_name, child in self.idata.children.items():
                groups[child_name] = _as_stored(child_name, child.to_dataset())
        return {name: ds.drop_encoding() for name, ds in groups.items()}

    def to_netcdf(self, path: str | os.PathLike) -> Path:
        """Write the result (and any posterior) to a netCDF-4 (HDF5) file.

        The file is a tree of groups: the root attributes (format version,
        settings, log-likelihood, ``id`` and ``sha256``), ``/bayesgmm`` with the
        estimate, the responsibilities and the data, and for Bayesian fits the
        groups of :attr:`idata` (``posterior``, ``log_likelihood``, ...). Each
        array is stored once: posterior draws of the weights, means and
        covariances live in ``/posterior`` only. Numeric arrays are compressed
        (zlib, with byte shuffling); nothing is rounded.

        A large pointwise log-likelihood (more than
        :data:`bayesgmm.posterior.LOG_LIK_FLOAT64_MAX_VALUES` draw-observation pairs,
        e.g. 80 million values for 4 x 1000 draws of 20,000 points: 320 MB in
        float32, more than the rest of the file a hundred times over) is not
        written: its group keeps its coordinates and attributes and the
        attribute ``bayesgmm_values_omitted``, and :func:`load` recomputes the
        values from the stored posterior draws and data (the same computation
        as at fit time; seconds). Only a group that bayesgmm computed itself
        (attribute ``bayesgmm_computed_from``) is left out.

        Two SHA-256 digests let :func:`load` refuse a file whose numbers changed
        after writing. The root attribute ``sha256`` digests the contents: every
        array (name, dimensions, dtype, shape and bytes as stored) and every
        attribute of every group, whatever the HDF5 layout. A last line after
        the HDF5 data, ``bayesgmm-sha256 <hex>``, digests every byte before it
        and is checked before the HDF5 library parses the file (damaged HDF5
        metadata can make that library loop forever); HDF5 and netCDF readers
        ignore it. Digests detect damage and editing, not a deliberate forgery:
        anyone can recompute them.

        The whole file is built in memory first (a few times its size in RAM),
        then written to a temporary file beside ``path``, flushed to disk and
        renamed into place. If the free space is short, or the write fails, an
        ``OSError`` naming ``path`` is raised and any older file at ``path`` is
        left unchanged. The new file's permissions follow the umask, as for
        any file the process creates.

        Parameters
        ----------
        path : str or path-like
            Destination, conventionally ending in ``.nc``.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        ValueError
            If ``path`` is a folder.
        OSError
            If the file cannot be written (missing folder, no permission, not
            enough free space); the message names ``path``.

        Examples
        --------
        >>> import os, tempfile
        >>> import bayesgmm as bg
        >>> result = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
        >>> path = result.to_netcdf(os.path.join(tempfile.mkdtemp(), "fit.nc"))
        >>> bg.load(path).log_likelihood == result.log_likelihood
        True
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"path must be a file name, got the directory {str(path)!r}.")
        _write_atomic(path, _render(self._groups()))
        return path


# ----------------------------------------------------------------------
# File format helpers
# ----------------------------------------------------------------------

#: Version of the layout written by :meth:`GMMResult.to_netcdf` (see ``_constants``).
FORMAT_VERSION = FILE_FORMAT_VERSION
_DIGEST_ATTR = "sha256"
_SHARED_ATTR = "stored_in_posterior"
_POSTERIOR_VARIABLES = ("weights", "means", "covariances")
#: Free space asked for beyond the file's own size (filesystem blocks and metadata).
_SPACE_MARGIN = 64 * 1024
#: Arrays smaller than this are stored uncompressed (a chunk's overhead outweighs the gain).
_COMPRESS_MIN_BYTES = 1024
_COMPRESSION = {"zlib": True, "complevel": 4, "shuffle": True}
_TRAILER_PREFIX = b"\nbayesgmm-sha256 "
_TRAILER = re.compile(re.escape(_TRAILER_PREFIX) + rb"([0-9a-f]{64})\n")
_TRAILER_SIZE = len(_TRAILER_PREFIX) + 64 + 1


#: Attribute of a group whose values were left out of the file (recomputed on loading).
_OMITTED_ATTR = "bayesgmm_values_omitted"
_LOG_LIK_GROUP = "log_likelihood"


def _as_stored(name: str, ds: xr.Dataset) -> xr.Dataset:
    """``ds`` as written: a large log-likelihood bayesgmm can recompute loses its values."""
    if name != _LOG_LIK_GROUP:
        return ds
    from bayesgmm import posterior

    var = ds.get(posterior.LOG_LIK_VAR)
    if (ds.attrs.get(posterior.LOG_LIK_SOURCE_ATTR) != posterior.LOG_LIK_SOURCE
            or var is None or list(ds.data_vars) != [posterior.LOG_LIK_VAR]
            or var.dims != (CHAIN, DRAW, OBS) or var.attrs
            or var.size <= posterior.LOG_LIK_FLOAT64_MAX_VALUES):
        return ds
    out = ds.drop_vars(posterior.LOG_LIK_VAR)
    out.attrs[_OMITTED_ATTR] = json.dumps({"variable": posterior.LOG_LIK_VAR,
                                           "dtype": np.dtype(var.dtype).name})
    return out


def _restored(name: str, ds: xr.Dataset, tree: xr.DataTree, where: str) -> xr.Dataset:
    """A group read from a file, with values left out by :func:`_as_stored` recomputed."""
    if _OMITTED_ATTR not in ds.attrs:
        return ds
    try:
        info = json.loads(ds.attrs[_OMITTED_ATTR])
        dtype = np.dtype(info["dtype"])
        ok = name == _LOG_LIK_GROUP and dtype.kind == "f"
    except (TypeError, ValueError, KeyError):
        ok = False
    if not ok:
        raise DifferentModelError(f"path: the attribute {_OMITTED_ATTR!r} of group {name!r} "
                                  f"in {where} is malformed.")
    from bayesgmm import posterior

    try:
        values = posterior.recompute_log_likelihood(tree, dtype)[posterior.LOG_LIK_VAR]
    except (ValueError, KeyError) as err:
        raise DifferentModelError(
            f"path: {where} left the {name!r} values out to be recomputed, but they cannot "
            f"be from its posterior and observed_data groups ({err})."
        ) from err
    out = ds.assign({posterior.LOG_LIK_VAR: values.variable})
    out.attrs = {k: v for k, v in ds.attrs.items() if k != _OMITTED_ATTR}
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, range | tuple | set):
        return list(value)
    return repr(value)


def _config_id(attrs: dict[str, Any]) -> str:
    keys = ("bayesgmm_format_version", "covariance_type", "method", "config")
    text = json.dumps({k: attrs[k] for k in keys}, sort_keys=True, default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _local_scheduler() -> contextlib.AbstractContextManager:
    """A context in which xarray writes with a local lock, whatever dask client is active.

    With a ``dask.distributed`` client set as default, xarray takes a
    distributed lock named after the write target; for an in-memory target
    the scheduler does not know that name and the write fails. The file is
    written from this process's memory, so a process-local lock is the right
    one.
    """
    if "dask" not in sys.modules:
        return contextlib.nullcontext()
    import dask

    return dask.config.set(scheduler="synchronous")


def _render(groups: dict[str, xr.Dataset]) -> bytes:
    """The complete file, compressed and carrying its SHA-256 digest, as bytes."""
    encoding = {}
    for name, ds in groups.items():
        compressed = {
            var: dict(_COMPRESSION) for var, values in ds.variables.items()
            if values.dtype.kind in "biufc" and values.ndim > 0
            and values.nbytes >= _COMPRESS_MIN_BYTES
        }
        if compressed:
            encoding[name if name.startswith("/") else "/" + name] = compressed
    import h5netcdf  # only when saving or loading: it brings in h5py

    tree = xr.DataTree.from_dict(groups)
    with _local_scheduler():
        buffer = io.BytesIO(bytes(tree.to_netcdf(None, engine="h5netcdf", encoding=encoding)))
    with h5netcdf.File(buffer, "a") as handle:
        handle.attrs[_DIGEST_ATTR] = _digest(handle)
    body = buffer.getvalue()
    return body + _trailer(body)


def _trailer(body: bytes) -> bytes:
    """The line appended after the HDF5 data: the SHA-256 of every byte before it.

    HDF5 readers ignore bytes past the end of the HDF5 data, so the file stays
    an ordinary netCDF-4 file; :func:`load` checks this digest before the HDF5
    library parses anything.
    """
    return _TRAILER_PREFIX + hashlib.sha256(body).hexdigest().encode() + b"\n"


def _split_trailer(payload: bytes) -> tuple[bytes, str | None]:
    """The HDF5 bytes and the SHA-256 written after them (``None`` if there is none)."""
    match = _TRAILER.fullmatch(payload[-_TRAILER_SIZE:])
    if match is None:
        return payload, None
    return payload[:-_TRAILER_SIZE], match.group(1).decode()


def _write_atomic(path: Path, payload: bytes) -> None:
    """Write ``payload`` to a temporary file beside ``path``, then rename it into place.

    Plain file I/O (not HDF5) touches the disk, so a full disk raises
    ``OSError`` instead of crashing the process; the size is known exactly
    before anything is written.
    """
    folder = path.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError as err:
        raise OSError(err.errno, f"cannot write there ({err.strerror or err})",
                      str(path)) from None
    if free < len(payload) + _SPACE_MARGIN:
        raise OSError(
            errno.ENOSPC,
            f"Not enough free space: the file needs {len(payload):,} bytes and "
            f"{str(folder)!r} has {free:,} free; nothing was written",
            str(path),
        )
    tmp = folder / f".{path.name}.{secrets.token_hex(4)}.tmp"
    try:
        # mode 0o666 filtered by the umask, as for any new file
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as err:
        raise _naming(err, path) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise _naming(err, path) from None  # the cause would name the temporary file
        raise
    _fsync_folder(folder)


def _naming(err: OSError, path: Path) -> OSError:
    """The same error, naming the user's path instead of a temporary file."""
    if err.errno is None:
        return OSError(f"could not write {str(path)!r}: {err}")
    return OSError(err.errno, err.strerror or str(err), str(path))


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _digest(handle: Any) -> str:
    """SHA-256 over every group, dimension, variable and attribute as stored.

    A canonical serialization is fed to the hash in sorted order: for each
    group its attributes and dimensions, for each variable its dimension names,
    attributes, dtype, shape and bytes. Only the root's ``sha256`` attribute
    itself is left out.
    """
    digest = hashlib.sha256(b"bayesgmm-sha256-v1")

    def feed(tag: bytes, payload: bytes | memoryview) -> None:
        digest.update(tag + len(payload).to_bytes(8, "little"))
        digest.update(payload)

    def feed_attrs(attrs: Any, skip: str | None = None) -> None:
        names = sorted(n for n in attrs if n != skip)
        feed(b"A", str(len(names)).encode())
        for name in names:
            feed(b"k", name.encode())
            _feed_value(feed, attrs[name])

    def walk(group: Any, where: str) -> None:
        feed(b"G", where.encode())
        feed_attrs(group.attrs, _DIGEST_ATTR if where == "/" else None)
        for name in sorted(group.dimensions):
            feed(b"D", f"{name}={len(group.dimensions[name])}".encode())
        for name in sorted(group.variables):
            var = group.variables[name]
            feed(b"V", name.encode())
            feed(b"d", json.dumps(list(var.dimensions)).encode())
            feed_attrs(var.attrs)
            _feed_value(feed, var[()] if var.ndim == 0 else var[...])
        for name in sorted(group.groups):
            walk(group.groups[name], f"{where.rstrip('/')}/{name}")

    walk(handle, "/")
    return digest.hexdigest()


def _feed_value(feed: Any, value: Any) -> None:
    if isinstance(value, str):
        feed(b"s", value.encode("utf-8", "surrogatepass"))
        return
    if isinstance(value, bytes):
        feed(b"b", value)
        return
    array = np.asarray(value)
    feed(b"t", f"{array.dtype.str}{array.shape}".encode())
    if array.dtype.kind == "O":
        for item in array.reshape(-1):
            _feed_value(feed, item)
    else:
        feed(b"a", memoryview(np.ascontiguousarray(array)).cast("B"))


def load(path: str | os.PathLike) -> GMMResult:
    """Read a :class:`GMMResult` written by :meth:`GMMResult.to_netcdf`.

    Before anything is decoded, the two SHA-256 digests written with the file
    (see :meth:`GMMResult.to_netcdf`) are recomputed and compared:

    1. the digest on the file's last line, ``bayesgmm-sha256 <hex>``, over
       every byte before it, checked before the HDF5 library parses those
       bytes;
    2. the root attribute ``sha256``, over every array (name, dimensions,
       dtype, shape and bytes) and every attribute of every group.

    A mismatch of either raises :class:`~bayesgmm.exceptions.DifferentModelError`:
    a file whose numbers or attributes changed after writing (an edit, a
    damaged disk, a flipped bit) is refused, never loaded with changed values.
    A file without the last line (what an HDF5 tool such as ``h5repack`` or
    ``nccopy`` leaves when it rewrites the file) loads when the contents
    digest matches; a file of the current format without the ``sha256`` attribute is
    refused. The settings must also match the stored ``id`` (the first 16 hex
    digits of a SHA-256 of the format version, covariance type, method and
    configuration). The digests
    detect damage and edits, not deliberate forgery: anyone can recompute them.

    Files written by bayesgmm before the digests were introduced (format 1)
    still load, with a :class:`~bayesgmm.exceptions.UnverifiedFileWarning`:
    they carry no digest, so only their ``id`` is checked and changed numbers
    go undetected. A format-1 file that carries a digest or other attributes
    of a later format is refused. Saving such a result again writes the
    current format, digests included.

    Parameters
    ----------
    path : str or path-like
        File to read.

    Returns
    -------
    GMMResult

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    DifferentModelError
        If the file is not a readable netCDF file written by bayesgmm, comes
        from a newer file format, does not match either SHA-256 digest (or,
        in the current format, lacks the ``sha256`` attribute), does not
        match its ``id``, or has missing or malformed attributes or
        variables. The message names ``path``.

    Warns
    -----
    UnverifiedFileWarning
        For a file of format 1, which carries no digest.

    Examples
    --------
    >>> import os, tempfile
    >>> import bayesgmm as bg
    >>> result = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
    >>> back = bg.load(result.to_netcdf(os.path.join(tempfile.mkdtemp(), "fit.nc")))
    >>> back.weights.identical(result.weights)
    True
    """
    path = Path(path)
    where = repr(str(path))
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, f"path: {where} is a folder; give the saved "
                                "file in it", str(path))
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, f"path: no such file {where}.", str(path))
    import h5netcdf  # only when saving or loading: it brings in h5py

    payload, file_digest = _split_trailer(path.read_bytes())
    if file_digest is not None and hashlib.sha256(payload).hexdigest() != file_digest:
        # checked before the HDF5 library sees the bytes: damaged HDF5 metadata can make
        # it loop forever (one flipped bit in a string heap does)
        raise DifferentModelError(
            f"path: the bytes of {where} do not match the SHA-256 digest written at its end; "
            "the file was damaged or modified after it was written. Re-create it from the fit."
        )
    try:
        with h5netcdf.File(io.BytesIO(payload), "r") as handle:
            attrs = dict(handle.attrs)
            is_ours = "bayesgmm_format_version" in attrs and _ESTIMATE_GROUP in handle.groups
            file_version = _format_version(attrs, where) if is_ours else 0
            stored = attrs.get(_DIGEST_ATTR)
            handle_group_attrs = dict(handle.groups[_ESTIMATE_GROUP].attrs) if is_ours else {}
            actual = _digest(handle) if file_version >= 2 else None
    except DifferentModelError:
        raise
    except Exception as err:  # damaged or foreign bytes: h5py raises many kinds
        raise DifferentModelError(
            f"path: {where} is not a readable netCDF file: it is damaged, truncated or another "
            f"kind of file ({type(err).__name__}: {err})."
        ) from err
    if not is_ours:
        raise DifferentModelError(
            f"path: {where} was not written by bayesgmm.GMMResult.to_netcdf "
            "(no bayesgmm attributes or group), or it was damaged."
        )
    if file_version > FORMAT_VERSION:
        raise DifferentModelError(
            f"path: file format version {file_version} of {where} is newer than this "
            f"bayesgmm reads ({FORMAT_VERSION}); upgrade bayesgmm."
        )
    if file_version >= 2 and stored != actual:
        detail = ("it has no 'sha256' attribute" if stored is None
                  else "the arrays or attributes changed after it was written")
        raise DifferentModelError(
            f"path: the contents of {where} do not match the SHA-256 digest stored in it "
            f"({detail}); the file was modified or damaged. Re-create it from the fit."
        )
    later = stored is not None or file_digest is not None or _SHARED_ATTR in handle_group_attrs
    if file_version < 2 and later:
        raise DifferentModelError(
            f"path: {where} says it is file format {file_version}, yet it carries a SHA-256 "
            "digest or other attributes of a later format: the file was modified or damaged."
        )
    if file_version < 2:
        warnings.warn(
            f"{where} was written by an older bayesgmm (file format {file_version}) and "
            "carries no SHA-256 digest, so changes to its numbers cannot be detected. "
            "Save it again with GMMResult.to_netcdf to add one.",
            UnverifiedFileWarning,
            stacklevel=2,
        )
    try:
        with xr.open_datatree(io.BytesIO(payload), engine="h5netcdf") as tree:
            tree = tree.load()
    except Exception as err:
        raise DifferentModelError(
            f"path: {where} could not be decoded ({type(err).__name__}: {err})."
        ) from err
    return _from_tree(tree, attrs, where)


def _from_tree(tree: xr.DataTree, raw_attrs: dict[str, Any], where: str) -> GMMResult:
    attrs = {
        "covariance_type": _attr(raw_attrs, "covariance_type", _as_str, where),
        "method": _attr(raw_attrs, "method", _as_str, where),
        "config": _attr(raw_attrs, "config", _as_str, where),
        "log_likelihood": _attr(raw_attrs, "log_likelihood", _as_float, where),
        "converged": _attr(raw_attrs, "converged", _as_flag, where),
        "n_iter": _attr(raw_attrs, "n_iter", _as_n_iter, where),
        "bayesgmm_format_version": _format_version(raw_attrs, where),
    }
    config = _attr(attrs, "config", _as_config, where)
    if raw_attrs.get("id") != _config_id(attrs):
        raise DifferentModelError(
            f"path: the configuration stored in {where} does not match its id "
            "(a SHA-256 of the settings): the file was modified after it was written."
        )
    estimate = tree[_ESTIMATE_GROUP].to_dataset()
    shared = _attr(dict(estimate.attrs), _SHARED_ATTR, _as_name_list, where,
                   default=[])
    arrays: dict[str, xr.DataArray] = {}
    for name in (*_POSTERIOR_VARIABLES, "responsibilities"):
        if name in shared and name in _POSTERIOR_VARIABLES:
            group = tree.children.get("posterior")
            if group is None or name not in group.to_dataset():
                raise DifferentModelError(
                    f"path: {where} says {name!r} is stored in /posterior, which lacks it."
                )
            arrays[name] = group.to_dataset()[name]
        elif name in estimate:
            arrays[name] = estimate[name]
    missing = [v for v in _REQUIRED_VARIABLES if v not in arrays]
    if missing:
        raise DifferentModelError(f"path: {where} lacks required variables {missing}.")
    _check_shapes(arrays, where)
    others = {name: _restored(name, child.to_dataset(), tree, where)
              for name, child in tree.children.items() if name != _ESTIMATE_GROUP}
    idata = xr.DataTree.from_dict(others) if others else None
    return GMMResult(
        weights=arrays["weights"],
        means=arrays["means"],
        covariances=arrays["covariances"],
        responsibilities=arrays["responsibilities"],
        log_likelihood=attrs["log_likelihood"],
        covariance_type=attrs["covariance_type"],
        method=attrs["method"],
        config=config,
        idata=idata,
        converged=attrs["converged"],
        n_iter=None if attrs["n_iter"] < 0 else attrs["n_iter"],
        data=estimate["data"] if "data" in estimate else None,
    )


# Attribute parsers: each returns the value or raises ValueError/TypeError with the reason.

def _as_str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty string")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError("expected an integer")
    return int(value)


def _as_float(value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
            value, float | int | np.floating | np.integer):
        raise ValueError("expected a number")
    return float(value)


def _as_flag(value: Any) -> bool:
    if _as_int(value) not in (0, 1):
        raise ValueError("expected 0 or 1")
    return bool(value)


def _as_n_iter(value: Any) -> int:
    if _as_int(value) < -1:
        raise ValueError("expected an integer >= -1 (-1: unknown)")
    return int(value)


def _as_config(value: str) -> dict[str, Any]:
    config = json.loads(value)
    if not isinstance(config, dict):
        raise ValueError("expected a JSON object")
    return config


def _as_name_list(value: Any) -> list[str]:
    names = json.loads(_as_str(value))
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("expected a JSON list of variable names")
    return names


def _attr(attrs: dict[str, Any], name: str, parse: Any, where: str,
          default: Any = _MISSING) -> Any:
    """Attribute ``name`` parsed by ``parse``; ``DifferentModelError`` if absent or malformed."""
    if name not in attrs:
        if default is not _MISSING:
            return default
        raise DifferentModelError(f"path: {where} lacks the attribute {name!r}.")
    try:
        return parse(attrs[name])
    except (TypeError, ValueError) as err:  # json.JSONDecodeError is a ValueError
        raise DifferentModelError(
            f"path: attribute {name!r} of {where} is malformed ({err}); got "
            f"{attrs[name]!r:.80}."
        ) from err


def _format_version(attrs: dict[str, Any], where: str) -> int:
    version_ = _attr(attrs, "bayesgmm_format_version", _as_int, where)
    if version_ < 1:
        raise DifferentModelError(
            f"path: attribute 'bayesgmm_format_version' of {where} is malformed "
            f"(expected an integer >= 1); got {version_!r}."
        )
    return version_


def _check_shapes(arrays: dict[str, xr.DataArray], where: str) -> None:
    expected = {
        "weights": (COMPONENT,),
        "means": (COMPONENT, FEATURE),
        "covariances": (COMPONENT, FEATURE, FEATURE_BIS),
        "responsibilities": (OBS, COMPONENT),
    }
    for name, dims in expected.items():
        if arrays[name].dims[-len(dims):] != dims:
            raise DifferentModelError(
                f"path: variable {name!r} in {where} has dims {arrays[name].dims}, "
                f"expected (..., {', '.join(dims)})."
            )
    sizes = {(name, dim): arrays[name].sizes[dim] for name, dims in expected.items()
             for dim in dims}
    k = {size for (_, dim), size in sizes.items() if dim == COMPONENT}
    d = {size for (_, dim), size in sizes.items() if dim in (FEATURE, FEATURE_BIS)}
    if len(k) != 1 or len(d) != 1:
        raise DifferentModelError(
            f"path: inconsistent component or feature sizes in {where}: {sizes}."
        )
