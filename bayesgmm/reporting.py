"""Statistical reports: a self-contained HTML file and its Markdown twin.

:func:`report` takes a :class:`~bayesgmm.results.GMMResult` or a
:class:`~bayesgmm.compare.Comparison` and writes

- ``NAME.html``: one file, images embedded as PNG data, no JavaScript, no
  network;
- ``NAME.md``: the same text and tables, images in ``NAME_files/``;
- ``NAME_files/*.csv`` and ``*.tex``: every table for spreadsheets and papers.

Everything is written under temporary names and renamed into place at the
end, so a failed report never leaves half-written files behind.
"""

from __future__ import annotations

import base64
import html
import io
import os
import platform
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayesgmm.compare import BAYES_METHODS, Comparison, ModelK, _pick_text, fit_status
from bayesgmm.results import GMMResult

__all__ = ["MAR_TEXT", "describe_method", "missing_tables", "report", "table_to_latex",
           "table_to_markdown"]

_PACKAGES = ("bayesgmm", "numpy", "scipy", "pandas", "xarray", "scikit-learn", "pymc",
             "pytensor", "arviz", "nutpie", "matplotlib")


# --------------------------------------------------------------------------
# Table formatting (no optional dependencies)
# --------------------------------------------------------------------------


def _cell(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        return f"{value:.{digits}g}" if abs(value) < 1e5 else f"{value:.1f}"
    if value is None or value is pd.NA:
        return ""
    return str(value)


def _flat(table: pd.DataFrame) -> pd.DataFrame:
    """The table with its index as leading columns (a default range index is dropped)."""
    if isinstance(table.index, pd.RangeIndex) and table.index.name is None:
        return table
    return table.reset_index()


def table_to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """Format a DataFrame (index included) as a GitHub Markdown table.

    Examples
    --------
    >>> print(table_to_markdown(pd.DataFrame({"a": [1.5]}, index=pd.Index(["x"], name="k"))))
    | k | a |
    |---|---|
    | x | 1.5 |
    """
    flat = _flat(table)
    head = "| " + " | ".join(str(c) for c in flat.columns) + " |"
    rule = "|" + "|".join("---" for _ in flat.columns) + "|"
    body = ["| " + " | ".join(_cell(v, digits).replace("|", "\\|") for v in row) + " |"
            for row in flat.itertuples(index=False)]
    return "\n".join([head, rule, *body])


_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#",
                  "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                  "^": r"\textasciicircum{}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def table_to_latex(table: pd.DataFrame, digits: int = 4, caption: str = "") -> str:
    r"""Format a DataFrame (index included) as a LaTeX ``tabular`` with booktabs rules.

    Examples
    --------
    >>> print(table_to_latex(pd.DataFrame({"a_b": [1.5]})).splitlines()[2])
    a\_b \\
    """
    flat = _flat(table)
    lines = [r"\begin{tabular}{" + "l" * len(flat.columns) + "}", r"\toprule",
             " & ".join(_latex_escape(str(c)) for c in flat.columns) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(_cell(v, digits)) for v in row) + r" \\"
              for row in flat.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.insert(0, "% " + caption)
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Words
# --------------------------------------------------------------------------


def describe_method(result: GMMResult) -> str:
    """Plain-language description of how ``result`` was fitted, for a methods section."""
    cfg = result.config
    k, kind = result.n_components, result.covariance_type
    cov_words = {"full": "its own unrestricted covariance matrix",
                 "tied": "one covariance matrix shared by all components",
                 "diag": "its own diagonal covariance matrix",
                 "spherical": "its own single variance (spherical covariance)"}.get(kind)
    if cov_words is None:  # one of the 14 mclust models (bayesgmm.parsimonious)
        from bayesgmm.parsimonious import DESCRIPTIONS

        cov_words = (f"a covariance of mclust's {kind} model ({DESCRIPTIONS[kind]}; "
                     "Celeux and Govaert, 1995)")
    missing = (" Entries missing from the data (NaN) were integrated out of the likelihood, "
               "assumed missing at random: EM on the observed-data likelihood (Ghahramani "
               "and Jordan, 1994), whose log-likelihood AIC, BIC and ICL use."
               if _has_missing(result) else "")
    if result.method == "em":
        return (
            f"A {k}-component Gaussian mixture, each component with {cov_words}, was fitted by "
            f"maximum likelihood with the EM algorithm (Dempster, Laird and Rubin, 1977), "
            f"from {cfg.get('n_init', 1)} initialisation(s) by {cfg.get('init_params', 'kmeans')}"
            f", keeping the run with the highest likelihood among those without collapsed "
            f"components. Iterations stopped when the mean log-likelihood per observation "
            f"gained less than {cfg.get('tol', 'tol')} (at most {cfg.get('max_iter')} "
            f"iterations); reg_covar = {cfg.get('reg_covar')} was added to every covariance "
            f"diagonal. Information criteria: AIC (Akaike, 1974), BIC (Schwarz, 1978) and "
            f"ICL (Biernacki, Celeux and Govaert, 2000), lower is better.{missing}"
        )
    priors = cfg.get("priors") or {}
    prior_text = ", ".join(f"{name} = {value}" for name, value in priors.items()) or (
        "the package defaults")
    engine = {"nuts": "the No-U-Turn sampler (Hoffman and Gelman, 2014)",
              "advi": "mean-field automatic differentiation variational inference "
                      "(Kucukelbir et al., 2017)",
              "fullrank_advi": "full-rank automatic differentiation variational inference "
                               "(Kucukelbir et al., 2017)"}.get(result.method, result.method)
    draws = (f"{cfg.get('chains')} chains of {cfg.get('draws')} draws after "
             f"{cfg.get('tune')} tuning steps" if result.method == "nuts"
             else f"{cfg.get('draws')} draws from the fitted approximation")
    return (
        f"A {k}-component Gaussian mixture, each component with {cov_words}, was fitted as a "
        f"Bayesian model in PyMC: weights ~ Dirichlet, component means ~ Normal centred on "
        f"the data mean, covariances through LKJ-Cholesky priors with half-normal scales "
        f"(prior settings: {prior_text}). The component labels were marginalised out "
        f"(log-sum-exp over components). The posterior was approximated with {engine}, "
        f"{draws}. Every draw was relabelled to the EM solution by the Hungarian algorithm "
        f"on the Kullback-Leibler divergence between components before any summary. "
        f"WAIC (Watanabe, 2010) and PSIS-LOO (Vehtari, Gelman and Gabry, 2017) use the "
        f"pointwise marginal log-likelihood.{missing}"
    )


def _versions() -> pd.DataFrame:
    rows = [("python", platform.python_version())]
    for name in _PACKAGES:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            continue
    return pd.DataFrame(rows, columns=["package", "version"]).set_index("package")


#: Missingness patterns listed in the report's table; rarer ones are pooled in one row.
MAX_PATTERNS = 10


def _has_missing(result: GMMResult) -> bool:
    data = result.observed
    return data is not None and bool(np.isnan(np.asarray(data.values, dtype=float)).any())


def missing_tables(data) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Counts of missing entries per feature and per missingness pattern.

    Parameters
    ----------
    data : xarray.DataArray
        The fitted data, dims ``(obs, feature)``, NaN for a missing entry.

    Returns
    -------
    by_feature : pandas.DataFrame
        Index ``feature``; columns ``missing`` (rows missing it) and
        ``percent`` (of the rows).
    by_pattern : pandas.DataFrame
        One row per pattern, most frequent first (at most
        :data:`MAX_PATTERNS`, the rest pooled as ``other patterns``):
        ``missing features`` (``none`` for complete rows), ``n missing``,
        ``rows`` and ``percent``.

    Examples
    --------
    >>> import xarray as xr
    >>> X = xr.DataArray([[1.0, np.nan], [2.0, 3.0], [np.nan, 1.0], [4.0, np.nan]],
    ...                  dims=("obs", "feature"), coords={"feature": ["x", "y"]})
    >>> by_feature, by_pattern = missing_tables(X)
    >>> by_feature["missing"].tolist(), by_pattern["rows"].tolist()
    ([1, 2], [2, 1, 1])
    """
    names = [str(f) for f in data["feature"].values]
    holes = np.isnan(np.asarray(data.transpose("obs", "feature").values, dtype=float))
    n = holes.shape[0]
    counts = holes.sum(axis=0)
    by_feature = pd.DataFrame({"missing": counts.astype(int),
                               "percent": np.round(100.0 * counts / max(n, 1), 1)},
                              index=pd.Index(names, name="feature"))
    patterns, sizes = np.unique(holes, axis=0, return_counts=True)
    order = sorted(range(len(sizes)), key=lambda p: (-sizes[p], patterns[p].sum(),
                                                     tuple(patterns[p])))
    rows = []
    for p in order[:MAX_PATTERNS]:
        missing = [name for name, hole in zip(names, patterns[p], strict=True) if hole]
        rows.append((", ".join(missing) or "none", int(patterns[p].sum()), int(sizes[p])))
    rest = order[MAX_PATTERNS:]
    if rest:
        rows.append((f"other patterns ({len(rest)})", None, int(sum(sizes[p] for p in rest))))
    by_pattern = pd.DataFrame(rows, columns=["missing features", "n missing", "rows"])
    by_pattern["n missing"] = by_pattern["n missing"].astype("Int64")
    by_pattern["percent"] = np.round(100.0 * by_pattern["rows"] / max(n, 1), 1)
    return by_feature, by_pattern


#: What the missing-at-random assumption means, in words, for the report.
MAR_TEXT = (
    "The fit assumes the entries are missing at random (MAR): whether an entry is missing "
    "may depend on the values observed in the same row, but not on the missing value "
    "itself once those are known. Under MAR the likelihood of the observed entries, with "
    "the missing ones integrated out (what EM maximised here), gives valid estimates "
    "without modelling why values are missing; dropping the incomplete rows or filling "
    "them with column means would instead bias the estimates or understate their spread. "
    "MAR cannot be checked from the data: data missing because of their own unseen values "
    "(missing not at random) produce observed data that look the same. If values are "
    "missing because of what they are, for example measurements beyond an instrument's "
    "range, or subjects too ill to be measured, the fit is biased: the components' means "
    "and variances shift toward the values that were seen, and components whose members "
    "tend to lose values are given too little weight. Judge the assumption from how the "
    "data were collected; refitting without the incomplete rows, or with the imputed "
    "values shifted, shows how much the conclusions depend on it."
)


def _missing_section(doc: _Document, data) -> None:
    """Counts per feature and per pattern, and the MAR assumption in words."""
    holes = np.isnan(np.asarray(data.values, dtype=float))
    n, d = holes.shape
    total, incomplete = int(holes.sum()), int(holes.any(axis=1).sum())
    by_feature, by_pattern = missing_tables(data)
    doc.heading("Missing data")
    doc.text(f"{total} of {n * d} entries ({100 * total / (n * d):.1f}%) are missing, in "
             f"{incomplete} of {n} rows ({100 * incomplete / n:.1f}%); {n - incomplete} rows "
             f"are complete. The fits use every row: a row's missing entries are integrated "
             f"out of its likelihood, so it counts through its observed entries. The summary "
             f"above describes the observed entries only; in the cluster plots incomplete "
             f"rows are drawn hollow, at their conditional expectation under the fit "
             f"(GMMResult.impute).")
    doc.table("missing_by_feature", by_feature,
              "Missing entries per feature (percent of the rows)")
    shown = min(len(by_pattern), MAX_PATTERNS)
    doc.table("missing_patterns", by_pattern,
              f"Missingness patterns, the {shown} most frequent (which features a row "
              f"lacks; 'none' is the complete rows)")
    doc.text(MAR_TEXT)


def _data_summary(data) -> pd.DataFrame:
    frame = pd.DataFrame(data.values, columns=[str(f) for f in data["feature"].values])
    table = frame.describe().T[["count", "mean", "std", "min", "max"]]
    table.index.name = "feature"
    return table


# --------------------------------------------------------------------------
# Document model
# --------------------------------------------------------------------------


@dataclass
class _Document:
    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, bytes] = field(default_factory=dict)

    def heading(self, text: str) -> None:
        self.blocks.append(("h2", text))

    def text(self, text: str) -> None:
        self.blocks.append(("p", text))

    def warning(self, text: str) -> None:
        self.blocks.append(("warn", text))

    def table(self, name: str, table: pd.DataFrame, caption: str) -> None:
        self.tables[name] = table
        self.blocks.append(("table", (name, caption)))

    def figure(self, name: str, draw, caption: str) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        try:
            obj = draw()
        except ValueError as err:
            self.warning(f"Figure '{caption}' could not be drawn: {err}")
            return
        fig = getattr(obj, "figure", None) or plt.gcf()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
        plt.close(fig)
        self.figures[name] = buffer.getvalue()
        self.blocks.append(("figure", (name, caption)))

    def to_html(self) -> str:
        parts = [
            "<!DOCTYPE html>",
            "<html lang='en'><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;"
            "padding:0 1em;color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em;"
            "font-size:0.9em}th,td{border-bottom:1px solid #ddd;padding:0.25em 0.6em;"
            "text-align:right}th{background:#f4f4f4}caption{caption-side:top;text-align:left;"
            "font-style:italic;padding-bottom:0.3em}.warn{background:#fff4e5;border-left:4px "
            "solid #e69500;padding:0.4em 0.8em}figure{margin:1em 0}img{max-width:100%}"
            "</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        for kind, value in self.blocks:
            if kind == "h2":
                parts.append(f"<h2>{html.escape(value)}</h2>")
            elif kind == "p":
                parts.append(f"<p>{html.escape(value)}</p>")
            elif kind == "warn":
                parts.append(f"<p class='warn'>{html.escape(value)}</p>")
            elif kind == "table":
                name, caption = value
                table = _flat(self.tables[name])
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                    for row in table.itertuples(index=False))
                parts.append(f"<table><caption>{html.escape(caption)}</caption>"
                             f"<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            else:
                name, caption = value
                data = base64.b64encode(self.figures[name]).decode("ascii")
                parts.append(f"<figure><img src='data:image/png;base64,{data}' "
                             f"alt='{html.escape(caption)}'><figcaption>"
                             f"{html.escape(caption)}</figcaption></figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def to_markdown(self, files_dir: str) -> str:
        lines = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "h2":
                lines += [f"## {value}", ""]
            elif kind == "p":
                lines += [value, ""]
            elif kind == "warn":
                lines += [f"> **Warning:** {value}", ""]
            elif kind == "table":
                name, caption = value
                lines += [f"*{caption}*", "", table_to_markdown(self.tables[name]), ""]
            else:
                name, caption = value
                lines += [f"![{caption}]({files_dir}/{name}.png)", ""]
        return "\n".join(lines)


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------


def _clusters_caption(result: GMMResult, label: str) -> str:
    """Caption saying what :func:`bayesgmm.plotting.plot_clusters` draws for this fit."""
    from bayesgmm import plotting

    n_ringed = len(plotting.least_certain(result))
    limits = (f"at most {plotting.MAX_RINGED}, at most 5% of the points, and only points "
              f"whose component has probability below {plotting._CERTAIN}")
    if result.n_features == 1:
        marked = (f"the {n_ringed} least certain point(s) marked just above the axis ({limits})"
                  if n_ringed else "no point is marked as uncertain: every point's component "
                                   f"has probability {plotting._CERTAIN} or more")
        return (f"{label}: weighted component densities and the mixture density (dashed) over "
                f"a histogram of {result.feature_names[0]}; {marked}")
    ringed = (f"the {n_ringed} least certain point(s) ringed ({limits})" if n_ringed
              else "no point is ringed: every point's component has probability "
                   f"{plotting._CERTAIN} or more")
    if _has_missing(result):
        n_imputed = int(np.isnan(np.asarray(result.observed.values, dtype=float))
                        .any(axis=1).sum())  # the incomplete rows, drawn hollow
        ringed += (f"; the {n_imputed} incomplete row(s) hollow, at their conditional "
                   "expectation given their observed entries")
    faded = "coloured by component (faded as the assignment gets less certain)"
    if result.n_features == 2:
        return f"{label}: data {faded}, with 95% ellipses; {ringed}"
    shares = ""
    if result.observed is not None:
        _, explained = plotting.pca_projection(plotting.plotted_data(result)[0])
        shares = (f" (PC1 {100 * explained[0]:.1f}% and PC2 {100 * explained[1]:.1f}% of "
                  f"the standardised variance)")
    completed = "completed " if _has_missing(result) else ""
    return (f"{label}: data on the first two principal axes of the standardised "
            f"{completed}data{shares}, {faded}, with projected 95% ellipses; {ringed}")


def _checks(result: GMMResult) -> tuple[pd.DataFrame, list[str], list[str]]:
    """The fit's diagnostics, the warnings computing them raised, and :func:`fit_status`."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diag = result.diagnostics()
    reasons = fit_status(result, diag if result.is_bayesian else None)
    return diag, [str(item.message) for item in caught], reasons


def _result_sections(doc: _Document, result: GMMResult, prefix: str, reference=None, *,
                     role: str = "Fit", status: list[str] | None = None,
                     ppc: bool = False) -> None:
    """One fit: method, estimates, diagnostics, figures.

    ``role`` starts the heading ("Headline fit", "Secondary fit", ...); ``status``
    replaces :func:`fit_status` (a comparison's status column also checks LOO).
    A fit that fails a check gets a warning before its tables, not only after.
    ``ppc`` adds the posterior predictive check (Bayesian fits only).
    """
    from bayesgmm import plotting

    label = f"{result.method.upper()}, K={result.n_components}"
    doc.heading(f"{role}: {label}")
    diag, caught, reasons = _checks(result)
    if status is not None:
        reasons = status
    if reasons:
        doc.warning(f"This fit fails its own checks: {'; '.join(reasons)}. Do not read it "
                    f"as an answer: its estimates, tables and figures below are shown to "
                    f"diagnose it.")
    doc.text(describe_method(result))
    doc.text(f"Log-likelihood {result.log_likelihood:.3f} with {result.n_parameters} free "
             f"parameters: AIC {result.aic():.2f}, BIC {result.bic():.2f}, "
             f"ICL {result.icl():.2f}" + (" (at the posterior mean)." if result.is_bayesian
                                           else "."))
    summary = result.summary()
    caption = ("Posterior mean, sd and 89% equal-tailed credible interval per parameter"
               if result.is_bayesian else "Maximum-likelihood estimate per parameter")
    doc.table(f"{prefix}parameters", summary, caption)
    _diagnostic_section(doc, result, prefix, diag, caught, reasons)
    doc.figure(f"{prefix}clusters", lambda: plotting.plot_clusters(result),
               _clusters_caption(result, label))
    if result.is_bayesian and result.n_features >= 2:
        n_draws = min(40, result.means.sizes["chain"] * result.means.sizes["draw"])
        doc.figure(f"{prefix}posterior_ellipses",
                   lambda: plotting.plot_posterior_ellipses(result, reference, n_draws=n_draws),
                   f"{label}: {n_draws} posterior draws of each component's 95% ellipse"
                   + (" on the same principal axes" if result.n_features > 2 else "")
                   + (" over the EM ellipses (black)" if reference is not None else ""))
    doc.figure(f"{prefix}responsibilities", lambda: plotting.plot_responsibilities(result),
               f"{label}: the least certain assignments")
    uncertain = result.assignment_uncertainty().sort_values("probability").head(10)
    doc.table(f"{prefix}uncertain_points", uncertain,
              "The ten observations whose component is least certain")
    if ppc and result.is_bayesian:
        _ppc_section(doc, result, prefix, label)


#: Replicated data sets drawn in the report's posterior predictive check.
PPC_REPLICATES = 50


def _ppc_section(doc: _Document, result: GMMResult, prefix: str, label: str) -> None:
    from bayesgmm import plotting

    doc.heading("Posterior predictive check")
    doc.text(f"Each panel compares, for one feature, the empirical cumulative distribution "
             f"of the data (black) with those of {PPC_REPLICATES} data sets of the same size "
             f"simulated from posterior draws (light blue): where the black curve leaves the "
             f"band of blue ones, the fitted mixture does not reproduce that feature's data.")
    doc.figure(f"{prefix}ppc",
               lambda: plotting.plot_ppc(result, n_replicates=PPC_REPLICATES)[0],
               f"{label}: observed data (black) against {PPC_REPLICATES} posterior predictive "
               f"replicates, per feature")


def _diagnostic_section(doc: _Document, result: GMMResult, prefix: str, diag: pd.DataFrame,
                        caught: list[str], reasons: list[str]) -> None:
    if not result.is_bayesian:
        if not result.converged:
            doc.warning("EM stopped at max_iter before converging; the estimates may move "
                        "with more iterations.")
        for reason in reasons:
            if reason != "EM not converged":
                doc.warning(f"This fit fails a check: {reason}.")
        return
    doc.table(f"{prefix}diagnostics", diag,
              "Convergence diagnostics of the relabelled posterior (R-hat should be below "
              "1.01, bulk and tail ESS above 400)")
    for message in caught:
        doc.warning(message)
    for reason in reasons:
        doc.warning(f"This fit fails a check: {reason}. Do not read it as an answer.")
    if caught or reasons:
        return
    if result.method == "nuts":
        doc.text("No diagnostic warnings: R-hat, effective sample sizes and divergences are "
                 "within the recommended limits.")
    else:
        doc.text("ADVI converged, but a variational fit has no sampling diagnostics (R-hat "
                 "and ESS do not apply): its intervals are those of a Gaussian "
                 "approximation and tend to be too narrow; NUTS checks them.")


def _comparison_sections(doc: _Document, cmp: Comparison) -> None:
    doc.heading("Choosing the number of components")
    doc.text(cmp.verdict())
    shown = cmp.table.drop(columns=["warning"]).dropna(axis=1, how="all")
    doc.table("model_selection", shown,
              "Model selection: information criteria (lower is better) and elpd by WAIC and "
              "PSIS-LOO (higher is better), with LOO differences and stacking weights")
    warned = cmp.table["warning"][cmp.table["warning"] != ""]
    for key, text in warned.items():
        doc.warning(f"{key[0]}, {_pick_text(_pick_of(key))}: {text}")
    doc.figure("criteria", lambda: cmp.plot(),
               "BIC against K, one line per covariance model (mclust's sign)" if cmp.has_models
               else "Information criteria and elpd against K")
    if getattr(cmp, "n_clusters", None) is not None:  # compare_k(..., sparse=True)
        doc.table("n_clusters", cmp.n_clusters.to_frame(),
                  "Sparse finite mixture: posterior probability of each number of non-empty "
                  "components K+")


#: Whose pick is the headline: the most exact Bayesian method first (chosen by LOO), EM
#: (chosen by BIC) last.
HEADLINE_ORDER = (*BAYES_METHODS, "em")


def _criterion_of(method: str) -> str:
    return "bic" if method == "em" else "loo"


def _pick_of(key: tuple) -> Any:
    """The pick named by a table key: K, or ``ModelK`` for ``(method, model, K)``."""
    return ModelK(key[1], key[2]) if len(key) == 3 else key[1]


def _key_of(method: str, pick: Any) -> tuple:
    """The table key of ``method``'s ``pick`` (inverse of :func:`_pick_of`)."""
    return (method, *pick) if isinstance(pick, ModelK) else (method, pick)


def _picks(cmp: Comparison, include_flagged: bool) -> dict[str, tuple[Any, GMMResult]]:
    """Per method, the K (or model and K) its criterion picks and that fit, headline first."""
    ok = {key: r for key, r in cmp.results.items() if r is not None}
    picks = {}
    for method in dict.fromkeys(key[0] for key in ok):
        k = cmp.best(_criterion_of(method), method=method, include_flagged=include_flagged)
        if k is not None and _key_of(method, k) in ok:
            picks[method] = (k, ok[_key_of(method, k)])
    rank = {m: i for i, m in enumerate(HEADLINE_ORDER)}
    return dict(sorted(picks.items(), key=lambda item: rank.get(item[0], len(rank))))


def _status(cmp: Comparison, method: str, k: int) -> list[str]:
    status = str(cmp.table.loc[_key_of(method, k), "status"])
    return [] if status == "ok" else status.split("; ")


def _choose_fits(doc: _Document, cmp: Comparison) -> list[tuple[GMMResult, str, list[str]]]:
    """The fits to detail, headline first, as ``(result, role, status)``; explains the choice.

    The headline is the best fit that passes all its diagnostics: the K with the highest
    PSIS-LOO elpd among the passing fits of the most exact Bayesian method that has one
    (NUTS, then full-rank ADVI, then ADVI), else the K with the lowest BIC among the
    passing EM fits. Every other method's pick by the same rule follows as a secondary
    fit. When no fit passes, a warning says so at the top of the report and the fit the
    same rule picks among all fits is shown, with its failures, as no answer.
    """
    passing = _picks(cmp, include_flagged=False)
    doc.heading("Headline")
    if not passing:
        flagged = _picks(cmp, include_flagged=True)
        if not flagged:
            doc.text("No fit succeeded, so there is nothing to show; see the status and "
                     "warning columns of the model-selection table.")
            return []
        method, (k, result) = next(iter(flagged.items()))
        criterion = _criterion_of(method).upper()
        status = _status(cmp, method, k)
        doc.text(f"No headline: every fit fails at least one of its own checks (see the "
                 f"status column above). Shown below is the fit the headline rule picks when "
                 f"failing fits are allowed, {method.upper()}, {_pick_text(k)} "
                 f"(best {criterion} among "
                 f"the {method.upper()} fits), so that its failures can be read: "
                 f"{'; '.join(status)}. It is not an answer.")
        return [(result, "Best flagged fit (not an answer)", status)]
    method, (k, _) = next(iter(passing.items()))
    label = f"{method.upper()}, {_pick_text(k)}"
    if method == "em":
        bayes = [m for m in cmp.table.index.get_level_values("method").unique() if m != "em"]
        why = (f"The headline answer is {label}: the K with the lowest BIC among the EM fits "
               f"that pass their checks (converged, no collapsed component). A Bayesian fit "
               f"chosen by PSIS-LOO would come first, but "
               + ("none passes its diagnostics." if bayes else "none was fitted."))
    else:
        why = (f"The headline answer is {label}: the K with the highest PSIS-LOO elpd among "
               f"the {method.upper()} fits that pass all their diagnostics. A Bayesian fit "
               f"that passes comes first because LOO estimates how well the model predicts "
               f"new data and its intervals carry the parameter uncertainty; the most exact "
               f"method comes first (NUTS, then full-rank ADVI, then ADVI), and EM by BIC "
               f"only when no Bayesian fit passes.")
    notes = []
    for m, (k_ok, _) in passing.items():
        criterion = _criterion_of(m)
        k_any = cmp.best(criterion, method=m, include_flagged=True)
        if k_any is not None and k_any != k_ok:
            notes.append(f"{m.upper()}, {_pick_text(k_any)} scores better by "
                         f"{criterion.upper()} but "
                         f"fails its checks ({'; '.join(_status(cmp, m, k_any))}), so it is "
                         f"not shown as an answer.")
    for m in dict.fromkeys(key[0] for key in cmp.results):
        if m not in passing:
            notes.append(f"No {m.upper()} fit passes its diagnostics, so none is shown (see "
                         f"the status column above).")
    secondary = [f"{m.upper()}, {_pick_text(kk)}" for m, (kk, _) in list(passing.items())[1:]]
    if secondary:
        notes.append("Secondary fits, each its method's pick among its passing fits, follow "
                     "for comparison: " + "; ".join(secondary) + ".")
    doc.text(" ".join([why, *notes]))
    return [(result, "Headline fit" if i == 0 else "Secondary fit", [])
            for i, (_, (_, result)) in enumerate(passing.items())]


def _build(obj: GMMResult | Comparison, title: str | None) -> _Document:
    doc = _Document(title or "bayesgmm report")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc.text(f"Written {stamp} by bayesgmm {_versions().loc['bayesgmm', 'version']}.")
    if isinstance(obj, GMMResult):
        results = [obj]
    elif isinstance(obj, Comparison):
        if not _picks(obj, include_flagged=False):
            doc.warning("No fit passes its diagnostics; nothing below is an answer.")
        results = [r for _, (_, r) in _picks(obj, include_flagged=True).items()]
    else:
        raise TypeError(f"obj must be a GMMResult or a Comparison, got {type(obj).__name__}.")
    first = next((r for r in results if r.observed is not None), None)
    doc.heading("Data")
    if first is not None:
        doc.text(f"{first.n_obs} observations of {first.n_features} feature(s): "
                 f"{', '.join(first.feature_names)}.")
        doc.table("data_summary", _data_summary(first.observed), "Summary of the data")
        if _has_missing(first):
            _missing_section(doc, first.observed)
    if isinstance(obj, Comparison):
        _comparison_sections(doc, obj)
        shown = _choose_fits(doc, obj)
    else:
        shown = [(obj, "Fit", None)]
    results = [result for result, _, _ in shown]
    em_fits = {r.n_components: r for r in results if r.method == "em"}
    for i, (result, role, status) in enumerate(shown):
        reference = em_fits.get(result.n_components) if result.is_bayesian else None
        _result_sections(doc, result, f"{i + 1}_{result.method}_k{result.n_components}_",
                         reference, role=role, status=status,
                         ppc=i == 0 and result.is_bayesian)
    doc.heading("Reproducibility")
    seeds = sorted({str(r.config.get("random_state")) for r in results})
    doc.text(f"Random seed(s): {', '.join(seeds)}. Software versions below.")
    doc.table("versions", _versions(), "Software versions")
    return doc


def report(obj: GMMResult | Comparison, path: str | os.PathLike, *,
           title: str | None = None) -> Path:
    """Write an HTML statistical report and its Markdown twin.

    Parameters
    ----------
    obj : GMMResult or Comparison
        One fit, or a comparison from :func:`bayesgmm.compare_k`. A comparison's
        report details one headline fit, the best fit that passes all its
        diagnostics (by PSIS-LOO for the most exact Bayesian method with a
        passing fit, else by BIC for EM), then each other method's pick as a
        secondary fit. A fit that fails a check is never the headline: when
        none passes, a warning at the top says so and the best failing fit is
        shown with its failures. A fit that fails a check gets a warning at
        the top of its section.
    path : str or path-like
        The HTML file to write (``.html`` is added if missing). The Markdown
        twin goes beside it with ``.md``; images, CSV and LaTeX tables go to
        the folder ``<name>_files``.
    title : str, optional
        Report title.

    Returns
    -------
    pathlib.Path
        The HTML file.

    Examples
    --------
    >>> import tempfile, pathlib, bayesgmm as bg
    >>> fit = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
    >>> out = bg.report(fit, pathlib.Path(tempfile.mkdtemp()) / "faithful.html")
    >>> sorted(p.suffix for p in out.parent.iterdir())
    ['', '.html', '.md']
    """
    html_path = Path(path)
    if html_path.suffix.lower() not in (".html", ".htm"):
        html_path = html_path.with_name(html_path.name + ".html")
    if not html_path.parent.is_dir():
        raise ValueError(f"path: the folder {str(html_path.parent)!r} does not exist.")
    doc = _build(obj, title)
    files_name = html_path.stem + "_files"
    staging = Path(tempfile.mkdtemp(prefix=".bayesgmm-report-", dir=html_path.parent))
    try:
        files = staging / files_name
        files.mkdir()
        for name, png in doc.figures.items():
            (files / f"{name}.png").write_bytes(png)
        for name, table in doc.tables.items():
            table.to_csv(files / f"{name}.csv")
            (files / f"{name}.tex").write_text(table_to_latex(table, caption=name))
        (staging / "report.html").write_text(doc.to_html(), encoding="utf-8")
        (staging / "report.md").write_text(doc.to_markdown(files_name), encoding="utf-8")
        target_files = html_path.parent / files_name
        if target_files.exists():
            shutil.rmtree(target_files)
        os.replace(files, target_files)
        os.replace(staging / "report.md", html_path.with_suffix(".md"))
        os.replace(staging / "report.html", html_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return html_path
