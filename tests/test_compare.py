"""Choosing K (compare_k, Comparison) and EM-vs-EM/Bayes comparisons (compare)."""

import copy

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesgmm as bg
from bayesgmm.compare import TABLE_COLUMNS, match_components
from bayesgmm.posterior import LOG_LIK_VAR


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
    # and the values themselves: mclust's VVV fits of iris print BIC -574.018 (K=2) and
    # -580.84 (K=3), rounded to the digits shown (opposite sign convention)
    assert iris_sweep.table.loc[("em", 2), "bic"] == pytest.approx(574.018, abs=1e-3)
    assert row["bic"] == pytest.approx(580.84, abs=5e-3)


def test_best_on_three_well_separated_clusters_is_three(blobs):
    # The truth is known: three components 6 sd apart (make_blobs_gmm, 300 rows). BIC and
    # ICL are consistent and must find them; AIC is not (it picks 5 here) and is left out.
    sweep = bg.compare_k(blobs.X, range(1, 7), methods="em", progressbar=False)
    assert sweep.best("bic") == 3
    assert sweep.best("icl") == 3
    assert "BIC (em) and ICL (em) pick K=3" in sweep.verdict()


def _hand_table(statuses=None):
    """A table written by hand: what each criterion picks is known by construction."""
    rows = {
        # (method, K): aic, bic, icl, elpd_waic, elpd_loo
        ("em", 1): (30.0, 5.0, 9.0, np.nan, np.nan),
        ("em", 2): (10.0, 7.0, 8.0, np.nan, np.nan),
        ("em", 3): (20.0, 6.0, 7.0, np.nan, np.nan),
        ("advi", 1): (3.0, 3.0, 3.0, -80.0, -100.0),
        ("advi", 2): (1.0, 1.0, 1.0, -85.0, -90.0),
        ("advi", 3): (2.0, 2.0, 2.0, -70.0, -95.0),
    }
    table = pd.DataFrame(np.nan, index=pd.MultiIndex.from_tuples(rows, names=["method", "K"]),
                         columns=list(TABLE_COLUMNS)).astype({"status": object})
    for key, values in rows.items():
        table.loc[key, ["aic", "bic", "icl", "elpd_waic", "elpd_loo"]] = values
        table.loc[key, "status"] = (statuses or {}).get(key, "ok")
    return table


def test_best_takes_the_lowest_criterion_and_the_highest_elpd(iris_sweep):
    cmp = copy.copy(iris_sweep)
    cmp.table = _hand_table()
    # information criteria: lowest value, by EM unless a method is named
    assert (cmp.best("aic"), cmp.best("bic"), cmp.best("icl")) == (2, 1, 3)
    assert cmp.best("bic", method="advi") == 2
    # elpd: highest value (the lowest would give 1 and 2), by the Bayesian method
    assert (cmp.best("loo"), cmp.best("waic")) == (2, 3)
    assert cmp.best("loo", method="em") is None
    # a flagged fit does not vote unless asked to
    cmp.table = _hand_table({("em", 3): "collapsed component", ("advi", 2): "failed checks"})
    assert (cmp.best("icl"), cmp.best("loo")) == (2, 3)
    assert cmp.best("icl", include_flagged=True) == 3
    assert cmp.best("loo", include_flagged=True) == 2


def test_best_without_a_criterion_or_with_a_wrong_one(iris_sweep):
    assert iris_sweep.best("loo") is None
    with pytest.raises(ValueError, match="criterion must be one of"):
        iris_sweep.best("dic")


def test_one_component_row_is_the_closed_form_gaussian_fit(iris, iris_sweep):
    # K=1 needs no EM: the maximum-likelihood Gaussian is the sample mean and the biased
    # sample covariance; BIC = -2 loglik + 14 log 150 (4 means, 10 covariance entries)
    X = iris.to_numpy()
    loglik = stats.multivariate_normal(X.mean(0), np.cov(X.T, bias=True)).logpdf(X).sum()
    row = iris_sweep.table.loc[("em", 1)]
    # reg_covar=1e-6 on the diagonal moves the maximum by (n/4) reg^2 tr(Sigma^-2) ~ 1e-7
    # (second order: the first-order change is zero at the maximum)
    assert row["loglik"] == pytest.approx(loglik, abs=1e-6)
    assert row["bic"] == pytest.approx(-2 * loglik + 14 * np.log(150), abs=2e-6)
    assert row["bic"] == pytest.approx(829.978, abs=1e-3)  # the value above, printed


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


def _kl_1d(m1, v1, m2, v2):
    # KL(N(m1, v1) || N(m2, v2)) for variances v1, v2: the textbook closed form
    return 0.5 * np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / (2 * v2) - 0.5


def test_symmetric_kl_is_the_mean_of_both_directions_of_the_textbook_formula():
    from bayesgmm.bayes.relabel import symmetric_kl

    ma, va = np.array([0.0, 2.0, -1.0]), np.array([1.0, 0.5, 3.0])
    mb, vb = np.array([0.5, 4.0]), np.array([2.0, 0.25])
    got = symmetric_kl(ma[:, None], va[:, None, None], mb[:, None], vb[:, None, None])
    want = np.array([[0.5 * (_kl_1d(ma[j], va[j], mb[k], vb[k])
                             + _kl_1d(mb[k], vb[k], ma[j], va[j])) for k in range(2)]
                     for j in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    # in D dimensions with diagonal covariances the divergence adds up over the features
    m2, c2 = np.array([[0.0, 1.0]]), np.diag([1.0, 2.0])[None]
    n2, d2 = np.array([[1.0, -1.0]]), np.diag([0.5, 4.0])[None]
    total = sum(0.5 * (_kl_1d(m2[0, i], c2[0, i, i], n2[0, i], d2[0, i, i])
                       + _kl_1d(n2[0, i], d2[0, i, i], m2[0, i], c2[0, i, i])) for i in range(2))
    assert symmetric_kl(m2, c2, n2, d2)[0, 0] == pytest.approx(total, rel=1e-12)


def test_array_matching_undoes_any_shuffle():
    from bayesgmm.bayes.relabel import match_components as match_arrays

    rng = np.random.default_rng(0)
    means = rng.normal(0, 5, (5, 3))
    a = rng.normal(size=(5, 3, 3))
    covs = a @ a.transpose(0, 2, 1) + np.eye(3)
    for _ in range(5):
        shuffle = rng.permutation(5)
        perm = match_arrays(means[shuffle] + 0.01, covs[shuffle], means, covs)
        np.testing.assert_array_equal(shuffle[perm], np.arange(5))
    with pytest.raises(ValueError, match="same K"):
        match_arrays(means[:4], covs[:4], means, covs)


def test_permute_components_reorders_every_per_component_quantity(faithful):
    a = bg.EMGMM(3, random_state=0).fit(faithful).result_
    perm = np.array([2, 0, 1])
    b = a.permute_components(perm)
    np.testing.assert_array_equal(b.weights.values, a.weights.values[perm])
    np.testing.assert_array_equal(b.means.values, a.means.values[perm])
    np.testing.assert_array_equal(b.covariances.values, a.covariances.values[perm])
    np.testing.assert_array_equal(b.responsibilities.values, a.responsibilities.values[:, perm])
    # new label k is old label perm[k]: old label j becomes the k with perm[k] == j
    np.testing.assert_array_equal(np.argsort(perm)[a.labels.values], b.labels.values)
    assert b.means["component"].values.tolist() == [0, 1, 2]
    assert (b.log_likelihood, b.bic(), b.icl()) == pytest.approx((a.log_likelihood, a.bic(),
                                                                   a.icl()))
    np.testing.assert_allclose(b.predict_proba(faithful), a.predict_proba(faithful)[:, perm])
    assert a.means.values[0].tolist() != b.means.values[0].tolist()  # a is unchanged
    # compare() matches a shuffled copy back, whatever the order
    assert match_components(a, b).tolist() == np.argsort(perm).tolist()
    out = bg.compare([a, b])
    assert out.agreement["adjusted_rand"].iloc[0] == pytest.approx(1.0)
    np.testing.assert_allclose(out.components["em"], out.components["em_2"], rtol=1e-12)
    for bad in ([0, 1], [0, 0, 1], [0.0, 1.0, 2.0], [0, 1, 3]):
        with pytest.raises(ValueError, match=r"permutation of 0\.\.2"):
            a.permute_components(bad)


def test_permute_components_reorders_the_posterior_and_survives_a_round_trip(
        short_nuts_faithful, tmp_path):
    r = short_nuts_faithful
    b = r.permute_components([1, 0])
    for name in ("weights", "means", "covariances"):
        np.testing.assert_array_equal(b.idata["posterior"][name].values,
                                      r.idata["posterior"][name].values[:, :, ::-1])
        np.testing.assert_array_equal(getattr(b, name).values,
                                      getattr(r, name).values[:, :, ::-1])
    np.testing.assert_array_equal(b.idata["relabeling"]["permutation"].values,
                                  r.idata["relabeling"]["permutation"].values[..., ::-1])
    np.testing.assert_array_equal(b.idata["log_likelihood"][LOG_LIK_VAR].values,
                                  r.idata["log_likelihood"][LOG_LIK_VAR].values)
    np.testing.assert_allclose(b.summary().loc[0].values, r.summary().loc[1].values)
    back = bg.load(b.to_netcdf(tmp_path / "swapped.nc"))
    np.testing.assert_array_equal(back.means.values, b.means.values)
