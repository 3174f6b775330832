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
