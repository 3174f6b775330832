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

from bayesgmm.compare import Comparison, fit_status
from bayesgmm.results import GMMResult

__all__ = ["describe_method", "report", "table_to_latex", "table_to_markdown"]

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
                 "spherical": "its own single variance (spherical covariance)"}[kind]
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
            f"ICL (Biernacki, Celeux and Govaert, 2000), lower is better."
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
        f"pointwise marginal log-likelihood."
    )


def _versions() -> pd.DataFrame:
    rows = [("python", platform.python_version())]
    for name in _PACKAGES:
        try:
            rows.append((name, version(name)))
        except PackageNotFoundError:
            continue
    return pd.DataFrame(rows, columns=["package", "version"]).set_index("package")


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


def _result_sections(doc: _Document, result: GMMResult, prefix: str, reference=None) -> None:
    from bayesgmm import plotting

    label = f"{result.method.upper()}, K={result.n_components}"
    doc.heading(f"Fit: {label}")
    doc.text(describe_method(result))
    doc.text(f"Log-likelihood {result.log_likelihood:.3f} with {result.n_parameters} free "
             f"parameters: AIC {result.aic():.2f}, BIC {result.bic():.2f}, "
             f"ICL {result.icl():.2f}" + (" (at the posterior mean)." if result.is_bayesian
                                           else "."))
    summary = result.summary()
    caption = ("Posterior mean, sd and 89% equal-tailed credible interval per parameter"
               if result.is_bayesian else "Maximum-likelihood estimate per parameter")
    doc.table(f"{prefix}parameters", summary, caption)
    _diagnostic_section(doc, result, prefix)
    doc.figure(f"{prefix}clusters", lambda: plotting.plot_clusters(result),
               f"{label}: data coloured by component, 95% ellipses, uncertain points ringed")
    if result.is_bayesian and result.n_features >= 2:
        doc.figure(f"{prefix}posterior_ellipses",
                   lambda: plotting.plot_posterior_ellipses(result, reference),
                   f"{label}: posterior draws of the component ellipses"
                   + (" over the EM ellipses (black)" if reference is not None else ""))
    doc.figure(f"{prefix}responsibilities", lambda: plotting.plot_responsibilities(result),
               f"{label}: the least certain assignments")
    uncertain = result.assignment_uncertainty().sort_values("probability").head(10)
    doc.table(f"{prefix}uncertain_points", uncertain,
              "The ten observations whose component is least certain")


def _diagnostic_section(doc: _Document, result: GMMResult, prefix: str) -> None:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        diag = result.diagnostics()
    reasons = fit_status(result, diag if result.is_bayesian else None)
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
    for item in caught:
        doc.warning(str(item.message))
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
    for (method, k), text in warned.items():
        doc.warning(f"{method}, K={k}: {text}")
    doc.figure("criteria", lambda: cmp.plot(), "Information criteria and elpd against K")


def _build(obj: GMMResult | Comparison, title: str | None) -> _Document:
    doc = _Document(title or "bayesgmm report")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    doc.text(f"Written {stamp} by bayesgmm {_versions().loc['bayesgmm', 'version']}.")
    if isinstance(obj, GMMResult):
        results = [obj]
    elif isinstance(obj, Comparison):
        results = []
        ok = {key: r for key, r in obj.results.items() if r is not None}
        for method in dict.fromkeys(m for m, _ in ok):
            criterion = "bic" if method == "em" else "loo"
            k = obj.best(criterion, method=method)
            if k is not None:
                results.append(ok[(method, k)])
    else:
        raise TypeError(f"obj must be a GMMResult or a Comparison, got {type(obj).__name__}.")
    first = next((r for r in results if r.observed is not None), None)
    doc.heading("Data")
    if first is not None:
        doc.text(f"{first.n_obs} observations of {first.n_features} feature(s): "
                 f"{', '.join(first.feature_names)}.")
        doc.table("data_summary", _data_summary(first.observed), "Summary of the data")
    if isinstance(obj, Comparison):
        _comparison_sections(doc, obj)
    em_fits = {r.n_components: r for r in results if r.method == "em"}
    for i, result in enumerate(results):
        reference = em_fits.get(result.n_components) if result.is_bayesian else None
        _result_sections(doc, result, f"{i + 1}_{result.method}_k{result.n_components}_",
                         reference)
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
        One fit, or a comparison from :func:`bayesgmm.compare_k` (the report
        then details the best K of each method: BIC for EM, LOO for Bayes).
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
