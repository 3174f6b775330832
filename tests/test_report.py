"""Reports: self-contained HTML, a Markdown twin, CSV and LaTeX tables, atomic writes."""

import base64
import re

import pandas as pd
import pytest
from conftest import with_holes

import bayesgmm as bg
from bayesgmm import reporting as report_module


@pytest.fixture(scope="module")
def sweep():
    return bg.compare_k(bg.datasets.load_faithful(), range(1, 4), methods="em",
                        progressbar=False)


def test_html_is_self_contained(sweep, tmp_path):
    path = bg.report(sweep, tmp_path / "faithful.html", title="Old Faithful")
    page = path.read_text()
    assert "<script" not in page.lower()
    assert not re.search(r"(src|href)=['\"]?(https?:|//)", page)
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 3  # criteria, clusters and responsibilities of the BIC choice
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "BIC (em) and ICL (em) pick K=2" in page
    assert "EM algorithm (Dempster, Laird and Rubin, 1977)" in page
    assert "scikit-learn" in page and "Random seed(s): 0" in page


def test_markdown_twin_and_table_exports(sweep, tmp_path):
    path = bg.report(sweep, tmp_path / "faithful")
    assert path.name == "faithful.html"
    text = path.with_suffix(".md").read_text()
    files = tmp_path / "faithful_files"
    for link in re.findall(r"\]\((faithful_files/[^)]+)\)", text):
        assert (tmp_path / link).exists()
    table = pd.read_csv(files / "model_selection.csv", index_col=[0, 1])
    assert table.loc[("em", 2), "bic"] == pytest.approx(sweep.table.loc[("em", 2), "bic"])
    tex = (files / "model_selection.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\bottomrule" in tex and "n\\_params" in tex


def test_single_result_report(tmp_path, faithful):
    fit = bg.EMGMM(2, random_state=0).fit(faithful).result_
    page = bg.report(fit, tmp_path / "fit.html").read_text()
    assert "Maximum-likelihood estimate per parameter" in page


def test_failed_report_leaves_nothing(sweep, tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_module._Document, "to_html", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        bg.report(sweep, tmp_path / "broken.html")
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(sweep, tmp_path):
    with pytest.raises(TypeError, match="GMMResult or a Comparison"):
        bg.report({"not": "a result"}, tmp_path / "x.html")
    with pytest.raises(ValueError, match="does not exist"):
        bg.report(sweep, tmp_path / "missing" / "x.html")


def test_report_never_calls_a_failing_or_unchecked_fit_clean(tmp_path, short_nuts_faithful,
                                                             faithful):
    import warnings

    import bayesgmm as bg

    short = short_nuts_faithful
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        advi = bg.BayesGMM(2, method="advi", random_state=0,
                           progressbar=False).fit(faithful).result_
    for fit, name in ((short, "short"), (advi, "advi")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bg.report(fit, tmp_path / f"{name}.html")
        page = (tmp_path / f"{name}.html").read_text()
        assert "No diagnostic warnings" not in page, name
    assert "fails a check: R-hat" in (tmp_path / "short.html").read_text()
    assert "no sampling diagnostics" in (tmp_path / "advi.html").read_text()


# --------------------------------------------------------------------------
# The headline fit (issue 10): the best fit that passes its diagnostics
# --------------------------------------------------------------------------


def _markdown(obj, tmp_path, name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.report(obj, tmp_path / f"{name}.html").with_suffix(".md").read_text()


@pytest.fixture
def spurious_fits(spurious_em_fits):
    return dict(spurious_em_fits)


def test_headline_is_a_passing_fit_when_the_best_by_criterion_is_flagged(spurious_fits,
                                                                          tmp_path):
    from bayesgmm.compare import Comparison

    cmp = Comparison(spurious_fits)
    assert cmp.best("bic", include_flagged=True) == 3 and cmp.best("bic") == 2
    text = _markdown(cmp, tmp_path, "spurious")
    assert "## Headline fit: EM, K=2" in text
    assert "EM, K=3 scores better by BIC but fails its checks (spurious" in text
    assert "K=3" not in "".join(re.findall(r"^## .*$", text, flags=re.M))
    assert "No fit passes" not in text
    # the headline is stated before any fit section
    assert text.index("The headline answer is EM, K=2") < text.index("## Headline fit")


def test_a_flagged_bayesian_pick_is_never_the_headline(spurious_fits, short_nuts_faithful,
                                                       faithful, tmp_path):
    from bayesgmm.compare import Comparison

    em2 = bg.EMGMM(2, random_state=0).fit(faithful).result_
    cmp = Comparison({("em", 2): em2, ("nuts", 2): short_nuts_faithful})
    assert cmp.table.loc[("nuts", 2), "status"] != "ok"
    text = _markdown(cmp, tmp_path, "flagged_nuts")
    headings = re.findall(r"^## (.*)$", text, flags=re.M)
    assert "Headline fit: EM, K=2" in headings
    assert not any("NUTS" in h for h in headings)
    assert "No NUTS fit passes its diagnostics" in text
    # the same NUTS fit, counted as passing, is the headline and EM follows as secondary
    cmp.table.loc[("nuts", 2), "status"] = "ok"
    text = _markdown(cmp, tmp_path, "passing_nuts")
    headings = re.findall(r"^## (.*)$", text, flags=re.M)
    fits = [h for h in headings if " fit: " in h]
    assert fits == ["Headline fit: NUTS, K=2", "Secondary fit: EM, K=2"]
    assert "The headline answer is NUTS, K=2" in text and "PSIS-LOO" in text


def test_no_passing_fit_is_said_at_the_top(faithful, tmp_path):
    import warnings

    from bayesgmm.compare import Comparison

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {("em", k): bg.EMGMM(k, max_iter=2, random_state=0).fit(faithful).result_
                for k in (2, 3)}
    cmp = Comparison(fits)
    assert set(cmp.table["status"]) == {"EM not converged"}
    text = _markdown(cmp, tmp_path, "nopass")
    top = "No fit passes its diagnostics; nothing below is an answer."
    assert text.index(top) < text.index("## Data")
    k = cmp.best("bic", include_flagged=True)
    section = text[text.index(f"## Best flagged fit (not an answer): EM, K={k}"):]
    assert section.index("fails its own checks: EM not converged") < section.index(
        "Maximum-likelihood estimate per parameter")
    assert "Headline fit" not in text and "The headline answer" not in text
    page = (tmp_path / "nopass.html").read_text()
    assert page.index(top) < page.index("<h2>Data</h2>")


def test_single_failing_fit_warns_before_its_tables(faithful, tmp_path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = bg.EMGMM(2, max_iter=2, random_state=0).fit(faithful).result_
    text = _markdown(fit, tmp_path, "unconverged")
    warning = text.index("> **Warning:** This fit fails its own checks: EM not converged")
    assert text.index("## Fit: EM, K=2") < warning < text.index(
        "Maximum-likelihood estimate per parameter")
    clean = _markdown(bg.EMGMM(2, random_state=0).fit(faithful).result_, tmp_path, "clean")
    assert "Warning" not in clean


# --------------------------------------------------------------------------
# Figure captions say what plot_clusters draws
# --------------------------------------------------------------------------


def _clusters_caption(text):
    return re.search(r"!\[([^\]]*)\]\([^)]*_clusters\.png\)", text).group(1)


def test_caption_of_a_two_feature_fit(faithful, tmp_path):
    from bayesgmm import plotting

    fit = bg.EMGMM(2, random_state=0).fit(faithful).result_
    caption = _clusters_caption(_markdown(fit, tmp_path, "two"))
    n = len(plotting.least_certain(fit))
    assert caption.startswith("EM, K=2: data coloured by component")
    assert "with 95% ellipses" in caption and f"the {n} least certain point(s) ringed" in caption
    assert "at most 30" in caption and "principal" not in caption


def test_caption_of_a_fit_with_more_than_two_features(iris, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesgmm import plotting

    fit = bg.EMGMM(3, random_state=0).fit(iris).result_
    caption = _clusters_caption(_markdown(fit, tmp_path, "iris"))
    assert "data on the first two principal axes of the standardised data" in caption
    assert "with projected 95% ellipses" in caption
    n = len(plotting.least_certain(fit))
    assert f"the {n} least certain point(s) ringed" in caption
    # the shares of variance in the caption are those on the plotted axes
    ax = plotting.plot_clusters(fit)
    for axis, label in (("PC1", ax.get_xlabel()), ("PC2", ax.get_ylabel())):
        share = re.match(r"PC\d \(([\d.]+)%", label).group(1)
        assert f"{axis} {share}%" in caption
    plt.close("all")


def test_caption_of_a_one_feature_fit(faithful, tmp_path):
    from bayesgmm import plotting

    fit = bg.EMGMM(2, random_state=0).fit(faithful[["eruptions"]]).result_
    text = _markdown(fit, tmp_path, "one")
    caption = _clusters_caption(text)
    assert "weighted component densities" in caption and "over a histogram" in caption
    n = len(plotting.least_certain(fit))
    assert f"the {n} least certain point(s) marked just above the axis" in caption
    assert "ellipse" not in caption and "ringed" not in caption
    assert "ellipse" not in text.lower()


# --------------------------------------------------------------------------
# missing data: a section near the data description, nothing for complete data
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_holes():
    import numpy as np

    iris = bg.datasets.load_iris()
    return pd.DataFrame(with_holes(iris.to_numpy(), 0.12, seed=3), columns=iris.columns,
                        dtype=np.float64)


@pytest.fixture(scope="module")
def sweep_holes(iris_holes):
    return bg.compare_k(iris_holes, range(1, 4), methods="em", progressbar=False)


def _section(text, heading):
    """The Markdown between ``## heading`` and the next ``## ``."""
    return text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_missing_data_section_counts_per_column_and_pattern(sweep_holes, iris_holes, tmp_path):
    import numpy as np

    text = _markdown(sweep_holes, tmp_path, "holes")
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    # right after the data description, before model selection
    assert headings.index("Missing data") == headings.index("Data") + 1
    holes = iris_holes.isna().to_numpy()
    n, d = holes.shape
    section = _section(text, "Missing data")
    assert (f"{holes.sum()} of {n * d} entries ({100 * holes.sum() / (n * d):.1f}%) are "
            f"missing, in {holes.any(axis=1).sum()} of {n} rows") in section
    files = tmp_path / "holes_files"
    by_feature = pd.read_csv(files / "missing_by_feature.csv", index_col=0)
    assert by_feature["missing"].tolist() == holes.sum(axis=0).tolist()
    np.testing.assert_allclose(by_feature["percent"], np.round(100 * holes.mean(axis=0), 1))
    patterns = pd.read_csv(files / "missing_patterns.csv", index_col=0)
    assert patterns["rows"].sum() == n
    assert patterns["rows"].is_monotonic_decreasing or patterns.iloc[-1, 0].startswith("other")
    complete = patterns[patterns["missing features"] == "none"]
    assert complete["rows"].item() == (~holes.any(axis=1)).sum()
    one = patterns[patterns["missing features"] == "sepal_width"]
    only = holes[:, 1] & (holes.sum(axis=1) == 1)
    assert one["rows"].item() == only.sum() and one["n missing"].item() == 1
    # the MAR assumption in words: what it means, that it cannot be checked, what biases it
    for phrase in ("missing at random (MAR)", "not on the missing value itself",
                   "MAR cannot be checked from the data", "missing not at random",
                   "the fit is biased"):
        assert phrase in section, phrase
    assert "observed-data likelihood (Ghahramani and Jordan, 1994)" in text


def test_missing_data_report_draws_every_figure_and_marks_imputed_rows(sweep_holes,
                                                                        iris_holes, tmp_path):
    page = bg.report(sweep_holes, tmp_path / "holes.html").read_text()
    assert len(re.findall(r"src='data:image/png;base64,", page)) == 3
    assert "could not be drawn" not in page
    text = (tmp_path / "holes.md").read_text()
    caption = _clusters_caption(text)
    n_incomplete = int(iris_holes.isna().any(axis=1).sum())
    assert f"the {n_incomplete} incomplete row(s) hollow" in caption
    assert "principal axes of the standardised completed data" in caption


def test_many_patterns_are_pooled_after_the_most_frequent(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    X = with_holes(np.r_[rng.normal(0, 1, (150, 6)), rng.normal(4, 1, (150, 6))], 0.2)
    by_feature, by_pattern = report_module.missing_tables(
        bg.EMGMM(2, random_state=0).fit(X).result_.observed)
    n_patterns = len(np.unique(np.isnan(X), axis=0))
    assert n_patterns > report_module.MAX_PATTERNS + 1
    assert len(by_pattern) == report_module.MAX_PATTERNS + 1
    assert by_pattern["missing features"].iloc[-1] == (
        f"other patterns ({n_patterns - report_module.MAX_PATTERNS})")
    assert by_pattern["rows"].sum() == len(X)
    assert by_pattern["rows"].iloc[:-1].is_monotonic_decreasing
    assert by_feature["missing"].sum() == np.isnan(X).sum()


def test_complete_data_have_no_missing_section(sweep, tmp_path):
    text = _markdown(sweep, tmp_path, "complete")
    assert "## Missing data" not in text and "missing at random" not in text
    assert not (tmp_path / "complete_files" / "missing_patterns.csv").exists()
    assert "hollow" not in text


def test_saved_fit_with_missing_entries_loads_and_reports(iris_holes, tmp_path):
    import numpy as np

    fit = bg.EMGMM(3, random_state=0).fit(iris_holes).result_
    fit.to_netcdf(tmp_path / "fit.nc")
    loaded = bg.load(tmp_path / "fit.nc")
    np.testing.assert_array_equal(np.isnan(loaded.observed.values), iris_holes.isna().to_numpy())
    np.testing.assert_allclose(loaded.impute().values, fit.impute().values)
    assert loaded.log_likelihood == pytest.approx(fit.log_likelihood)
    original = _section(_markdown(fit, tmp_path, "original"), "Missing data")
    again = _section(_markdown(loaded, tmp_path, "loaded"), "Missing data")
    assert again == original
    assert (tmp_path / "loaded_files" / "missing_patterns.csv").read_text() == (
        tmp_path / "original_files" / "missing_patterns.csv").read_text()
