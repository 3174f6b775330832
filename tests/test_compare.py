"""Choosing K (compare_k, Comparison) and EM-vs-EM/Bayes comparisons (compare)."""

import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm.compare import TABLE_COLUMNS, match_components


@pytest.fixture(scope="module")
def iris_sweep():
    return bg.compare_k(bg.datasets.load_iris(), range(1, 7), methods="em", progressbar=False)


def test_iris_bic_picks_two_like_mclust_vvv(iris_sweep):
    assert iris_sweep.best("bic") == 2
    assert list(iris_sweep.table.columns) == list(TABLE_COLUMNS)
    assert iris_sweep.table.index.names == ["method", "K"]
    assert len(iris_sweep.table) == 6


def test_table_matches_individual_fits(iris, iris_sweep):
    r = bg.EMGMM(3, n_init=10, random_state=0).fit(iris).result_
    row = iris_sweep.table.loc[("em", 3)]
    assert row["bic"] == pytest.approx(r.bic(), rel=1e-12)
    assert row["icl"] == pytest.approx(r.icl(), rel=1e-12)
    assert row["n_params"] == 44


def test_best_follows_each_criterion(iris_sweep):
    table = iris_sweep.table.loc["em"]
    for criterion in ("aic", "bic", "icl"):
        assert iris_sweep.best(criterion) == int(table[criterion].idxmin())
    assert iris_sweep.best("loo") is None
    with pytest.raises(ValueError, match="criterion must be one of"):
        iris_sweep.best("dic")


def test_verdict_names_the_choice_of_each_criterion(iris_sweep):
    text = iris_sweep.verdict()
    assert "K=2" in text and "BIC (em)" in text and "AIC (em)" in text


def test_failed_fit_stays_in_the_table():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(30, 2)), np.tile([[4.0, 4.0]], (3, 1))])
    cmp = bg.compare_k(X, [1, 2, 20], methods="em", progressbar=False,
                       em_kwargs={"n_init": 2, "max_iter": 3})
    assert len(cmp.table) == 3
    assert cmp.table.loc[("em", 20), "warning"] != ""
    assert cmp.best("bic") in (1, 2, 20)


def test_bad_arguments_are_named():
    X = bg.datasets.load_faithful()
    with pytest.raises(ValueError, match="methods must be one of"):
        bg.compare_k(X, [1, 2], methods=("em", "gibbs"), progressbar=False)
    with pytest.raises(ValueError, match="n_components must be an integer >= 1, got 0"):
        bg.compare_k(X, [0, 1], methods="em", progressbar=False)
    with pytest.raises(ValueError, match="exceeds the 272 samples"):
        bg.compare_k(X, [300], methods="em", progressbar=False)


def test_compare_matches_components_whatever_their_order(faithful):
    a = bg.EMGMM(2, random_state=0).fit(faithful).result_
    b = bg.EMGMM(2, random_state=2).fit(faithful).result_
    perm = match_components(a, b)
    np.testing.assert_allclose(b.means.values[perm], a.means.values, rtol=1e-6)
    out = bg.compare([a, b])
    assert out.agreement["adjusted_rand"].iloc[0] == pytest.approx(1.0)
    assert out.agreement["resp_max_abs_diff"].iloc[0] < 1e-6
    assert list(out.components.columns) == ["em", "em_2"]
    np.testing.assert_allclose(out.components["em"], out.components["em_2"], rtol=1e-6)


def test_compare_rejects_mismatched_fits(faithful):
    a = bg.EMGMM(2, random_state=0).fit(faithful).result_
    b = bg.EMGMM(3, random_state=0).fit(faithful).result_
    with pytest.raises(ValueError, match="same data and K"):
        bg.compare([a, b])
    with pytest.raises(ValueError, match="at least 2 fits"):
        bg.compare([a])
