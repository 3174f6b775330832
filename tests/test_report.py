"""Reports: self-contained HTML, a Markdown twin, CSV and LaTeX tables, atomic writes."""

import base64
import re

import pandas as pd
import pytest

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
