"""The one results object every fit returns: :class:`GMMResult`.

EM fits hold point estimates; Bayesian fits hold posterior draws (dims
``chain, draw`` in front) and the whole posterior as an ``xarray.DataTree``
in :attr:`GMMResult.idata`. Information criteria use the point estimate
(the posterior mean for Bayesian fits). Saving and loading go through
netCDF (``h5netcdf``), never pickle.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import tempfile
from dataclasses import dataclass, field
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
from bayesgmm._validation import check_X, validate_prob
from bayesgmm.exceptions import DifferentModelError

__all__ = ["GMMResult", "load"]

_SAMPLE_DIMS = (CHAIN, DRAW)
_ESTIMATE_GROUP = "bayesgmm"
_REQUIRED_VARIABLES = ("weights", "means", "covariances", "responsibilities")


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
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance parametrisation that was fitted.
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

    def _state(self):
        from bayesgmm import em

        weights, means, covs = (a.values for a in self.point_estimate())
        return em.EMState(weights, means, covs, em.precision_cholesky(covs, "full"), "full")

    def _check_new_data(self, X: Any) -> np.ndarray:
        arr = check_X(X, check_variance=False)
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
            "bayesgmm_format_version": FILE_FORMAT_VERSION,
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

    def to_netcdf(self, path: str | os.PathLike) -> Path:
        """Write the result (and any posterior) to a netCDF file.

        The file is written to a temporary name beside ``path`` and renamed
        into place, so a failed write never leaves a half-written file.

        Parameters
        ----------
        path : str or path-like
            Destination, conventionally ending in ``.nc``.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"path must be a file name, got the directory {str(path)!r}.")
        estimate = xr.Dataset(
            {
                "weights": self.weights,
                "means": self.means,
                "covariances": self.covariances,
                "responsibilities": self.responsibilities,
            }
        )
        if self.data is not None:
            estimate["data"] = self.data
        groups: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs=self._attrs()),
                                          _ESTIMATE_GROUP: estimate}
        if self.idata is not None:
            for child_name, child in self.idata.children.items():
                groups[child_name] = child.to_dataset()
        tree = xr.DataTree.from_dict(groups)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            tree.to_netcdf(tmp, engine="h5netcdf")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


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


def load(path: str | os.PathLike) -> GMMResult:
    """Read a :class:`GMMResult` written by :meth:`GMMResult.to_netcdf`.

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
    DifferentModelError
        If the file was not written by bayesgmm, comes from a newer file
        format, misses required variables, or its configuration does not
        match its checksum.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file {str(path)!r}.")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            tree = tree.load()
    except (OSError, ValueError) as err:
        raise DifferentModelError(
            f"path: {str(path)!r} is not a readable netCDF file written by bayesgmm ({err})."
        ) from err
    attrs = dict(tree.attrs)
    if "bayesgmm_format_version" not in attrs or _ESTIMATE_GROUP not in tree.children:
        raise DifferentModelError(
            f"path: {str(path)!r} was not written by bayesgmm.GMMResult.to_netcdf "
            "(no bayesgmm attributes or group)."
        )
    if int(attrs["bayesgmm_format_version"]) > FILE_FORMAT_VERSION:
        raise DifferentModelError(
            f"path: file format version {attrs['bayesgmm_format_version']} is newer than this "
            f"bayesgmm reads ({FILE_FORMAT_VERSION}); upgrade bayesgmm."
        )
    if attrs.get("id") != _config_id(attrs):
        raise DifferentModelError(
            f"path: the configuration stored in {str(path)!r} does not match its checksum "
            "(the file was modified after it was written)."
        )
    estimate = tree[_ESTIMATE_GROUP].to_dataset()
    missing = [v for v in _REQUIRED_VARIABLES if v not in estimate]
    if missing:
        raise DifferentModelError(f"path: {str(path)!r} lacks required variables {missing}.")
    _check_shapes(estimate, path)
    others = {name: child.to_dataset() for name, child in tree.children.items()
              if name != _ESTIMATE_GROUP}
    idata = xr.DataTree.from_dict(others) if others else None
    n_iter = int(attrs["n_iter"])
    return GMMResult(
        weights=estimate["weights"],
        means=estimate["means"],
        covariances=estimate["covariances"],
        responsibilities=estimate["responsibilities"],
        log_likelihood=float(attrs["log_likelihood"]),
        covariance_type=str(attrs["covariance_type"]),
        method=str(attrs["method"]),
        config=json.loads(attrs["config"]),
        idata=idata,
        converged=bool(int(attrs["converged"])),
        n_iter=None if n_iter < 0 else n_iter,
        data=estimate["data"] if "data" in estimate else None,
    )


def _check_shapes(estimate: xr.Dataset, path: Path) -> None:
    k = estimate.sizes.get(COMPONENT)
    d = estimate.sizes.get(FEATURE)
    expected = {
        "weights": (COMPONENT,),
        "means": (COMPONENT, FEATURE),
        "covariances": (COMPONENT, FEATURE, FEATURE_BIS),
        "responsibilities": (OBS, COMPONENT),
    }
    for name, dims in expected.items():
        if estimate[name].dims[-len(dims):] != dims:
            raise DifferentModelError(
                f"path: variable {name!r} in {str(path)!r} has dims {estimate[name].dims}, "
                f"expected (..., {', '.join(dims)})."
            )
    if estimate.sizes.get(FEATURE_BIS) != d or k is None:
        raise DifferentModelError(f"path: inconsistent feature or component sizes in {path}.")
