"""Tables that compare fits: across K (:class:`Comparison`) and across methods (:func:`compare`).

Works on :class:`~bayesgmm.results.GMMResult` objects only (NumPy, pandas,
and ArviZ for stacking weights); the fitting loop is in
:mod:`bayesgmm.selection`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from bayesgmm import em_dask, parsimonious
from bayesgmm._validation import validate_choice, validate_prob
from bayesgmm.bayes import relabel
from bayesgmm.posterior import ESS_MIN, PARETO_K_MAX, RHAT_MAX
from bayesgmm.results import GMMResult

__all__ = ["Comparison", "MethodComparison", "ModelK", "compare", "fit_status"]

CRITERIA = ("aic", "bic", "icl", "waic", "loo")
BAYES_METHODS = ("nuts", "fullrank_advi", "advi")
#: Column order of :attr:`Comparison.table`.
TABLE_COLUMNS = (
    "loglik", "n_params", "aic", "bic", "icl",
    "elpd_waic", "se_waic", "p_waic", "elpd_loo", "se_loo", "p_loo",
    "rank", "elpd_diff", "dse", "weight",
    "pareto_k_max", "waic_warning", "loo_warning", "r_hat_max", "divergences",
    "converged", "status", "warning",
)


class ModelK(NamedTuple):
    """A pick of a table with a ``model`` level: the covariance model and K."""

    model: str
    K: int

    def __str__(self) -> str:
        return f"{self.model}, K={self.K}"


def _pick_text(pick: Any) -> str:
    """``"K=2"`` for a K, ``"VEV, K=2"`` for a :class:`ModelK`."""
    return str(pick) if isinstance(pick, ModelK) else f"K={pick}"


def _criterion_column(criterion: str) -> tuple[str, bool]:
    """Table column holding ``criterion`` and whether lower is better."""
    criterion = validate_choice(criterion, "criterion", CRITERIA)
    if criterion in ("waic", "loo"):
        return f"elpd_{criterion}", False
    return criterion, True


@dataclass
class Comparison:
    """Fits of several numbers of components K by several methods, side by side.

    Parameters
    ----------
    results : dict
        ``{(method, K): GMMResult or None}``; ``None`` marks a fit that failed.
        Keys ``(method, model, K)`` compare covariance models too (mclust's
        table, ``compare_k(..., covariance_type="all")``): the table then has
        a ``model`` level and :meth:`best` returns a :class:`ModelK`.
    messages : dict, optional
        ``{(method, K): text}``: errors and warnings raised while fitting.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per (method, K) or (method, model, K); see :data:`TABLE_COLUMNS`. Information
        criteria are lower-is-better (scikit-learn's sign); ``elpd_*`` are
        higher-is-better; ``rank``, ``elpd_diff`` (``elpd - elpd_best``, so
        <= 0), ``dse`` and ``weight`` (stacking) come from
        :func:`arviz.compare` on LOO, within each method, unrounded.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> cmp = bg.compare_k(bg.datasets.load_faithful(), range(1, 4), methods=("em",),
    ...                    progressbar=False)
    >>> cmp.best("bic")
    2
    """

    results: dict[tuple, GMMResult | None]
    messages: dict[tuple, str] = field(default_factory=dict)
    sparse: GMMResult | None = None
    table: pd.DataFrame = field(init=False, repr=False)
    n_clusters: pd.Series | None = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        self.table = self._build_table()
        if self.sparse is not None:  # a sparse finite mixture: the posterior of K+
            self.n_clusters = self.sparse.n_clusters()

    # ------------------------------------------------------------------
    # Table
    # ------------------------------------------------------------------

    def _build_table(self) -> pd.DataFrame:
        rows = {}
        for key, result in self.results.items():
            row: dict[str, Any] = {c: np.nan for c in TABLE_COLUMNS}
            row["warning"] = self.messages.get(key, "")
            row["converged"] = False
            row["status"] = "fit failed"
            if result is not None:
                row.update(_row_of(result))
            rows[key] = row
        table = pd.DataFrame.from_dict(rows, orient="index", columns=list(TABLE_COLUMNS))
        table.index = pd.MultiIndex.from_tuples(list(rows), names=self._levels)
        table = table.sort_index()
        self._add_loo_comparison(table)
        for name in ("waic_warning", "loo_warning", "converged"):
            table[name] = table[name].astype("boolean")
        return table

    @property
    def has_models(self) -> bool:
        """Whether the table compares covariance models (a ``model`` level)."""
        return any(len(key) == 3 for key in self.results)

    @property
    def _levels(self) -> list[str]:
        return ["method", "model", "K"] if self.has_models else ["method", "K"]

    def _add_loo_comparison(self, table: pd.DataFrame) -> None:
        for method in table.index.get_level_values("method").unique():
            fits = {key: r for key, r in self.results.items()
                    if key[0] == method and r is not None and r.is_bayesian
                    and r.idata is not None}
            if len(fits) < 2:
                continue
            import arviz as az

            from bayesgmm.posterior import LOG_LIK_VAR

            names = {",".join(str(part) for part in key[1:]): key for key in fits}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ranked = az.compare({name: fits[key].idata for name, key in names.items()},
                                    var_name=LOG_LIK_VAR, round_to="none")
            for name, values in ranked.iterrows():
                key = names[name]
                for column in ("rank", "elpd_diff", "dse", "weight"):
                    table.loc[key, column] = float(values[column])

    # ------------------------------------------------------------------
    # Choices
    # ------------------------------------------------------------------

    def _usable(self, include_flagged: bool) -> pd.DataFrame:
        """The table's rows that choices may use: status "ok" unless ``include_flagged``."""
        return self.table if include_flagged else self.table[self.table["status"] == "ok"]

    def _default_method(self, criterion: str, include_flagged: bool = False) -> str | None:
        table = self._usable(include_flagged)
        methods = set(table.index.get_level_values("method"))
        order = ("em", *BAYES_METHODS) if criterion in ("aic", "bic", "icl") else BAYES_METHODS
        column = _criterion_column(criterion)[0]
        for method in order:
            if method in methods and table.loc[method, column].notna().any():
                return method
        return None

    def best(self, criterion: str = "bic", method: str | None = None, *,
             include_flagged: bool = False) -> int | ModelK | None:
        """Number of components K (and covariance model) preferred by ``criterion``.

        Parameters
        ----------
        criterion : {"aic", "bic", "icl", "waic", "loo"}, default="bic"
            Information criteria pick the lowest value, WAIC and LOO the
            highest elpd.
        method : str, optional
            Restrict to one method. By default AIC, BIC and ICL use EM (they
            are defined at the maximum likelihood), WAIC and LOO the most
            exact Bayesian method with a sound fit (NUTS, then full-rank ADVI,
            then ADVI).
        include_flagged : bool, default=False
            Also use fits whose ``status`` is not "ok" (failed diagnostics,
            collapsed components, no convergence). By default they are left
            out: a criterion computed from a fit the package rejects is no
            answer.

        Returns
        -------
        int, ModelK or None
            K; for a table with a ``model`` level, the :class:`ModelK`
            ``(model, K)``; ``None`` when no usable fit has that criterion.
        """
        column, lower = _criterion_column(criterion)
        method = method or self._default_method(criterion, include_flagged)
        table = self._usable(include_flagged)
        if method is None or method not in table.index.get_level_values("method"):
            return None
        values = table.loc[method, column].dropna()
        if values.empty:
            return None
        pick = values.idxmin() if lower else values.idxmax()
        if self.has_models:
            return ModelK(str(pick[0]), int(pick[1]))
        return int(pick)

    def left_out(self) -> dict[tuple, str]:
        """Fits that :meth:`best` and :meth:`verdict` leave out by default, with the reasons.

        Returns
        -------
        dict
            ``{(method, K): status}`` (``(method, model, K)`` with a model
            level) for every row whose status is not "ok".
        """
        return {key: status for key, status in self.table["status"].items() if status != "ok"}

    def verdict(self, include_flagged: bool = False) -> str:
        """A short text: which K each criterion picks and how close the runner-up is by LOO.

        Parameters
        ----------
        include_flagged : bool, default=False
            Let fits that fail their diagnostics vote too (see :meth:`best`).

        Returns
        -------
        str
            e.g. "BIC (em), ICL (em) and LOO (nuts) pick K=2; AIC (em) picks
            K=3. By LOO (nuts), K=3 is within 1 se of the best." followed by
            the fits left out and why.
        """
        picks: dict[Any, list[str]] = {}
        for criterion in CRITERIA:
            k = self.best(criterion, include_flagged=include_flagged)
            if k is not None:
                label = f"{criterion.upper()} ({self._default_method(criterion, include_flagged)})"
                picks.setdefault(k, []).append(label)
        left_out = "" if include_flagged else _describe_left_out(self.left_out())
        if not picks:
            if include_flagged or not left_out:
                return "No fit succeeded; see the warning column of the table."
            return ("No fit passes its diagnostics, so no K is chosen." + left_out
                    + " Use verdict(include_flagged=True) to see what they would pick.")
        parts = []
        for k, names in sorted(picks.items(), key=lambda item: -len(item[1])):
            verb = "picks" if len(names) == 1 else ("agree on" if len(picks) == 1 else "pick")
            joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            parts.append(f"{joined} {verb} {_pick_text(k)}")
        text = "; ".join(parts) + "."
        loo_method = self._default_method("loo", include_flagged)
        best_loo = self.best("loo", include_flagged=include_flagged)
        if best_loo is not None:
            rows = self._usable(include_flagged).loc[loo_method]
            close = [(ModelK(str(k[0]), int(k[1])) if self.has_models else int(k))
                     for k, row in rows.iterrows()
                     if pd.notna(row["elpd_diff"]) and abs(row["elpd_diff"]) <= row["dse"]]
            close = [k for k in close if k != best_loo]
            if close:
                ks = ", ".join(_pick_text(k) for k in close)
                text += f" By LOO ({loo_method}), {ks} within 1 se of the best."
        return text + self._sparse_sentence() + left_out

    def _sparse_sentence(self) -> str:
        """The posterior of K+ of the sparse mixture (``compare_k(..., sparse=True)``), in words."""
        if self.n_clusters is None:
            return ""
        from bayesgmm.bayes.n_clusters import n_clusters_diagnostics

        probs = self.n_clusters
        mode = int(probs.idxmax())
        text = (f" The sparse mixture (NUTS, K_max={probs.attrs.get('n_components')}) gives "
                f"P(K+={mode}) = {probs.max():.2f} for the number of non-empty components")
        bic = self.best("bic")
        if bic is not None and not self.has_models and int(bic) != mode:
            text += f", where BIC picks K={bic} (docs/n_clusters.md says when they differ)"
        diag = n_clusters_diagnostics(self.sparse, warn=False)
        if len(set(diag.attrs["chain_modes"])) > 1 or diag["r_hat"].max() > 1.01:
            text += (f"; but its chains disagree (modal K+ per chain {diag.attrs['chain_modes']},"
                     " R-hat above 1.01), so this posterior is not an answer yet")
        return text + "."

    def __repr__(self) -> str:
        shown = self.table[["loglik", "n_params", "aic", "bic", "icl", "elpd_waic", "elpd_loo",
                            "se_loo", "weight"]]
        return ("Comparison\n" + shown.to_string(float_format=lambda v: f"{v:.2f}")
                + "\n" + self.verdict())

    def _repr_html_(self) -> str:
        import html

        return (f"<div><strong>Comparison</strong><p>{html.escape(self.verdict())}</p>"
                f"{self.table.to_html(float_format=lambda v: f'{v:.3f}', na_rep='')}</div>")

    def plot(self, ax=None, **kwargs):
        """Information criteria and elpd against K; see :func:`bayesgmm.plotting.plot_criteria`.

        A table with a ``model`` level gets mclust's plot instead, BIC against
        K with one line per model (:func:`bayesgmm.plotting.plot_model_bic`).
        """
        if self.has_models:
            from bayesgmm.plotting import plot_model_bic

            return plot_model_bic(self, ax=ax, **kwargs)
        from bayesgmm.plotting import plot_criteria

        return plot_criteria(self, ax=ax, **kwargs)


def _describe_left_out(left_out: dict[tuple, str]) -> str:
    if not left_out:
        return ""
    listed = "; ".join(f"{key[0]} {', '.join(map(str, key[1:-1]))}{', ' if len(key) == 3 else ''}"
                       f"K={key[-1]} ({status})" for key, status in left_out.items())
    return f" Left out, as their fits fail their own checks: {listed}."


def _collapsed(result: GMMResult) -> list[int]:
    """Components of the point estimate that sit on too few points or on the variance floor."""
    from bayesgmm.em import collapsed_from_full, rounding_variance

    weights, means, covs = (a.values for a in result.point_estimate())
    # the floor the fit used: per feature for a Bayesian "auto" floor, else the number given
    given = result.config.get("reg_covar", 0.0)
    reg = result.config.get("reg_covar_used", given)
    reg = np.asarray(reg, dtype=float) if not isinstance(reg, str) else 0.0
    ratio = 1 + 1 / 12 if isinstance(given, str) else 2.0  # "auto": the data's resolution
    # an "auto" floor already holds every variance at the resolution; otherwise a component
    # narrower than the data's rounding is spurious
    data = result.observed
    if data is not None and em_dask.is_dask_collection(data.data):  # not gathered in full
        rounding = None if isinstance(given, str) else em_dask.rounding_variance(data.data)
    else:
        rounding = (rounding_variance(data.values)
                    if data is not None and not isinstance(given, str) else None)
    kind = result.covariance_type
    kind = parsimonious.collapse_kind(kind) if parsimonious.is_model(kind) else kind
    return collapsed_from_full(weights, means, covs, kind, result.n_obs,
                               reg, floor_ratio=ratio, rounding=rounding).tolist()


def fit_status(result: GMMResult | None, diagnostics: pd.DataFrame | None = None,
               pareto_k_max: float = float("nan")) -> list[str]:
    """Why a fit should not be read as an answer; empty when it passes every check.

    Checks: the fit failed; EM or ADVI did not converge; a component collapsed
    onto too few points or onto the ``reg_covar`` floor (a spurious maximum);
    for NUTS, R-hat above :data:`RHAT_MAX`, bulk ESS of a reported quantity
    below :data:`ESS_MIN`, divergent transitions; for ADVI, the Pareto
    k-hat of the importance ratios above :data:`PARETO_K_MAX` (when the fit
    recorded it); for Bayesian fits, a PSIS-LOO Pareto k above
    :data:`PARETO_K_MAX`.

    Parameters
    ----------
    result : GMMResult or None
        ``None`` for a fit that raised.
    diagnostics : pandas.DataFrame, optional
        ``result.diagnostics(warn=False)``, when already computed.
    pareto_k_max : float, optional
        Largest PSIS-LOO Pareto k, when already computed.

    Returns
    -------
    list of str
        One short reason per failed check.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> fit = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
    >>> fit_status(fit)
    []
    """
    if result is None:
        return ["fit failed"]
    reasons = []
    collapsed = _collapsed(result)
    if collapsed:
        reasons.append(f"spurious: component(s) {collapsed} collapsed")
    if not result.is_bayesian:
        if not result.converged:
            reasons.append("EM not converged")
        return reasons
    if diagnostics is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            diagnostics = result.diagnostics(warn=False)
    attrs = diagnostics.attrs
    if result.method == "nuts":
        r_hat = float(np.nanmax(diagnostics["r_hat"])) if "r_hat" in diagnostics else np.nan
        if r_hat > RHAT_MAX:
            reasons.append(f"R-hat {r_hat:.3f} > {RHAT_MAX}")
        ess = float(np.nanmin(diagnostics["ess_bulk"])) if "ess_bulk" in diagnostics else np.nan
        if ess < ESS_MIN:
            reasons.append(f"bulk ESS {ess:.0f} < {ESS_MIN}")
        if attrs.get("divergences", 0):
            reasons.append(f"{int(attrs['divergences'])} divergences")
    else:
        if not result.converged or not attrs.get("advi_converged", True):
            reasons.append("ADVI not converged")
        k_hat = float(attrs.get("vi_pareto_k", np.nan))
        if k_hat > PARETO_K_MAX:
            reasons.append(f"VI diagnostic failed (k-hat {k_hat:.2f} > {PARETO_K_MAX})")
        elif np.isnan(k_hat):  # not recorded, or PSIS could not fit the ratios' tail
            reasons.append("VI diagnostic failed (k-hat not available)")
    if pareto_k_max > PARETO_K_MAX:
        reasons.append(f"LOO Pareto k {pareto_k_max:.2f} > {PARETO_K_MAX}")
    return reasons


def _row_of(result: GMMResult) -> dict[str, Any]:
    row: dict[str, Any] = {
        "loglik": result.log_likelihood,
        "n_params": result.n_parameters,
        "aic": result.aic(),
        "bic": result.bic(),
        "icl": (em_dask.icl(result) if em_dask.is_dask_collection(result.responsibilities.data)
                else result.icl()),
        "converged": bool(result.converged),
    }
    if not (result.is_bayesian and result.idata is not None):
        row["status"] = "; ".join(fit_status(result)) or "ok"
        return row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        waic = result.waic()
        loo = result.loo()
        diag = result.diagnostics()
    row.update({
        "elpd_waic": waic.elpd, "se_waic": waic.se, "p_waic": waic.p,
        "waic_warning": bool(waic.warning),
        "elpd_loo": float(loo.elpd), "se_loo": float(loo.se), "p_loo": float(loo.p),
        "pareto_k_max": float(np.nanmax(np.asarray(loo.pareto_k))),
        "loo_warning": bool(loo.warning),
    })
    r_hat = diag["r_hat"].to_numpy(dtype=float) if "r_hat" in diag else np.array([np.nan])
    if not np.isnan(r_hat).all():  # ADVI draws have no chains, hence no R-hat
        row["r_hat_max"] = float(np.nanmax(r_hat))
    row["divergences"] = diag.attrs.get("divergences", np.nan)
    row["status"] = "; ".join(fit_status(result, diag, row["pareto_k_max"])) or "ok"
    return row


# --------------------------------------------------------------------------
# EM against Bayes for the same K
# --------------------------------------------------------------------------


def match_components(reference: GMMResult, other: GMMResult) -> np.ndarray:
    """Permutation of ``other``'s components that best matches ``reference``'s.

    A wrapper of :func:`bayesgmm.bayes.relabel.match_components` on the two
    point estimates (the Hungarian algorithm on the symmetrised
    Kullback-Leibler divergence between components).

    Parameters
    ----------
    reference : GMMResult
        The fit whose labels are kept.
    other : GMMResult
        A fit of the same K and features.

    Returns
    -------
    ndarray of shape (n_components,)
        ``other`` component ``perm[k]`` corresponds to ``reference`` component
        ``k``: ``other.permute_components(perm)`` is labelled as ``reference``.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> a = bg.EMGMM(2, random_state=0).fit(X).result_
    >>> match_components(a, a.permute_components([1, 0])).tolist()
    [1, 0]
    """
    _, ma, ca = reference.point_estimate()
    _, mb, cb = other.point_estimate()
    return relabel.match_components(mb.values, cb.values, ma.values, ca.values)


@dataclass
class MethodComparison:
    """Fits of the same K by different methods, components matched.

    Attributes
    ----------
    components : pandas.DataFrame
        Index ``(component, parameter)`` in the reference's labelling; for
        every fit its estimate (EM) or posterior mean, and for Bayesian fits
        the credible interval and whether each other fit's estimate lies in it.
    agreement : pandas.DataFrame
        Per pair of fits: adjusted Rand index of the hard labels, mean and
        maximum absolute difference of the responsibilities.
    permutations : dict
        Fit name -> permutation applied to its components.
    """

    components: pd.DataFrame
    agreement: pd.DataFrame
    permutations: dict[str, np.ndarray]

    def __repr__(self) -> str:
        return ("MethodComparison\n" + self.agreement.to_string(float_format=lambda v: f"{v:.3f}")
                + "\n\n" + self.components.to_string(float_format=lambda v: f"{v:.4g}"))


def compare(results: list[GMMResult] | dict[str, GMMResult], prob: float = 0.94
            ) -> MethodComparison:
    """Compare fits of the same K (e.g. EM against Bayes), components matched.

    Parameters
    ----------
    results : list or dict of GMMResult
        The first is the reference whose component labels the others are
        matched to. A list is named by each result's ``method``.
    prob : float, default=0.94
        Mass of the credible intervals.

    Returns
    -------
    MethodComparison

    Raises
    ------
    ValueError
        Fewer than two results, or results with different K, features or data size.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> a = bg.EMGMM(2, random_state=0).fit(X).result_
    >>> b = bg.EMGMM(2, random_state=3, covariance_type="diag").fit(X).result_
    >>> out = bg.compare({"full": a, "diag": b})
    >>> float(out.agreement["adjusted_rand"].iloc[0]) > 0.9
    True
    """
    prob = validate_prob(prob)
    if isinstance(results, dict):
        named = dict(results)
    else:
        named = {}
        for r in results:
            name, i = r.method, 2
            while name in named:
                name, i = f"{r.method}_{i}", i + 1
            named[name] = r
    if len(named) < 2:
        raise ValueError(f"results must hold at least 2 fits to compare, got {len(named)}.")
    names = list(named)
    ref = named[names[0]]
    for name in names[1:]:
        r = named[name]
        if (r.n_components, r.n_features, r.n_obs) != (ref.n_components, ref.n_features,
                                                         ref.n_obs):
            raise ValueError(
                f"results: {name!r} has K={r.n_components}, D={r.n_features}, n={r.n_obs}; "
                f"the reference {names[0]!r} has K={ref.n_components}, D={ref.n_features}, "
                f"n={ref.n_obs}. Compare fits of the same data and K."
            )
    perms = {names[0]: np.arange(ref.n_components)}
    aligned = {names[0]: ref}
    for name in names[1:]:
        perms[name] = match_components(ref, named[name])
        aligned[name] = named[name].permute_components(perms[name])
    components = _component_table(aligned, prob)
    agreement = _agreement_table(aligned)
    return MethodComparison(components, agreement, perms)


def _component_table(aligned: dict[str, GMMResult], prob: float) -> pd.DataFrame:
    columns = {}
    intervals = {}
    for name, r in aligned.items():
        summary = r.summary(prob=prob)
        if not r.is_bayesian:
            columns[name] = summary["estimate"]
            continue
        columns[f"{name}_mean"] = summary["mean"]
        columns[f"{name}_lower"] = summary["lower"]
        columns[f"{name}_upper"] = summary["upper"]
        intervals[name] = (summary["lower"], summary["upper"])
    table = pd.DataFrame(columns)
    for name, (lower, upper) in intervals.items():
        for other in aligned:
            if other != name and other in table:
                table[f"{other}_in_{name}_interval"] = (table[other] >= lower) & (
                    table[other] <= upper)
    table.attrs["ci_prob"] = prob
    return table


def _agreement_table(aligned: dict[str, GMMResult]) -> pd.DataFrame:
    names = list(aligned)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ra, rb = aligned[a].responsibilities.values, aligned[b].responsibilities.values
            diff = np.abs(ra - rb)
            rows.append({
                "fit_a": a, "fit_b": b,
                "adjusted_rand": adjusted_rand_score(ra.argmax(1), rb.argmax(1)),
                "label_agreement": float(np.mean(ra.argmax(1) == rb.argmax(1))),
                "resp_mean_abs_diff": float(diff.mean()),
                "resp_max_abs_diff": float(diff.max()),
            })
    return pd.DataFrame(rows).set_index(["fit_a", "fit_b"])

