"""The 14 mclust models end to end (issue 14): EMGMM, the hc start, compare_k's model table.

Reference values are mclust's published fits (Scrucca et al. 2016 and mclust's own
examples), which print BIC as ``2 log L - p log n``; bayesgmm's BIC is its negative
(``-2 log L + p log n``, lower is better).
"""

import warnings

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

import bayesgmm as bg
from bayesgmm import criteria, hc, parsimonious
from bayesgmm._validation import validate_covariance_type
from bayesgmm.compare import ModelK

IRIS = bg.datasets.load_iris()
FAITHFUL = bg.datasets.load_faithful()

#: mclust's published maximum log-likelihoods (data, model, K, loglik, decimals printed).
#: VVV,2 on iris and on faithful come from their printed BIC (-574.0178 with 29
#: parameters, -2322.192 with 11).
MCLUST_LOGLIK = [
    (IRIS, "VEV", 2, -215.726, 3),
    (IRIS, "VEV", 3, -186.07, 2),
    (IRIS, "VVV", 2, -214.355, 3),
    (FAITHFUL, "EEE", 3, -1126.36, 2),
    (FAITHFUL, "VVV", 2, -1130.264, 3),
]


@pytest.mark.parametrize(("data", "model", "k", "loglik", "decimals"), MCLUST_LOGLIK,
                         ids=[f"{'iris' if d is IRIS else 'faithful'}-{m}{k}"
                              for d, m, k, _, _ in MCLUST_LOGLIK])
def test_default_fit_reaches_mclusts_log_likelihood(data, model, k, loglik, decimals):
    fit = bg.EMGMM(k, covariance_type=model, random_state=0).fit(data)
    # mclust prints `decimals` decimals: its value is known to half a unit of the last one;
    # mclust stops at a relative gain of 1e-5, so at least its value must be reached
    assert fit.result_.log_likelihood >= loglik - 0.5 * 10.0**-decimals
    assert fit.result_.covariance_type == model
    assert fit.covariances_.shape == (k, data.shape[1], data.shape[1])


def test_iris_vev2_is_mclusts_fit_with_its_bic_and_26_parameters():
    fit = bg.EMGMM(2, covariance_type="VEV", random_state=0).fit(IRIS)
    r = fit.result_
    assert r.n_parameters == 26
    # mclust: BIC -561.7285 (4 decimals), log-likelihood -215.726 (3 decimals)
    assert r.bic() == pytest.approx(561.7285, abs=1e-4)
    assert fit.bic(IRIS) == pytest.approx(561.7285, abs=1e-4)
    assert r.log_likelihood == pytest.approx(-215.726, abs=5e-4)
    # its sizes: 50 setosa, 100 others
    assert sorted(np.bincount(r.labels.values).tolist()) == [50, 100]


def _member_of(model: str, covs: np.ndarray, rtol: float = 1e-6) -> bool:
    """Whether the (K, D, D) matrices have the volume/shape/orientation the letters say."""
    d = covs.shape[-1]
    evals = np.linalg.eigvalsh(covs)
    volume = np.prod(evals, axis=1) ** (1 / d)
    shape = np.sort(evals / volume[:, None], axis=1)
    ok = True
    if model[0] == "E":
        ok &= np.allclose(volume, volume[0], rtol=rtol)
    if model[1] == "E":
        ok &= np.allclose(shape, shape[0], rtol=1e-5)
    if model[1] == "I":
        ok &= np.allclose(shape, 1.0, rtol=rtol)
    if model[2] == "I":
        off = covs - np.einsum("kii->ki", covs)[:, :, None] * np.eye(d)
        ok &= np.abs(off).max() <= rtol * np.abs(covs).max()
    if model[2] == "E":  # common orientation: the matrices commute
        comm = covs[0] @ covs[1:] - covs[1:] @ covs[0]
        ok &= np.abs(comm).max() <= 1e-5 * np.abs(covs).max() ** 2
    return bool(ok)


@pytest.fixture(scope="module")
def iris_k3_fits():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {m: bg.EMGMM(3, covariance_type=m, random_state=0).fit(IRIS)
                for m in parsimonious.MODELS}


@pytest.mark.parametrize("model", parsimonious.MODELS)
def test_fit_is_a_member_of_its_model_and_em_never_goes_down(model, iris_k3_fits):
    fit = iris_k3_fits[model]
    assert _member_of(model, fit.covariances_), model
    trace = np.asarray(fit.lower_bounds_)
    # generalised EM: each warm-started M-step raises Q, so the log-likelihood never falls
    # (1e-10 per row: the rounding of a mean over 150 rows). trace[0] is the start, an
    # unconstrained (VVV) fit to the hc partition, not a member of the model: it can lie
    # above the first constrained iterate.
    assert np.all(np.diff(trace[1:]) >= -1e-10)
    assert fit.result_.n_parameters == parsimonious.n_parameters(model, 3, 4)
    assert fit._n_parameters() == criteria.n_parameters(3, 4, model)


def test_member_check_can_fail():
    covs = np.stack([np.diag([1.0, 2.0]), np.diag([3.0, 1.0])])
    assert not _member_of("EEI", covs)
    assert not _member_of("VEI", covs)
    assert _member_of("VVI", covs)


@pytest.mark.parametrize(("kind", "model"), list(parsimonious.SKLEARN_EQUIVALENTS.items()))
def test_scikit_learn_types_and_their_mclust_names_reach_the_same_fit(kind, model):
    # faithful K=2 has one sound optimum; both start from the same k-means partition
    a = bg.EMGMM(2, covariance_type=kind, init_params="kmeans", random_state=1).fit(FAITHFUL)
    b = bg.EMGMM(2, covariance_type=model, init_params="kmeans", random_state=1).fit(FAITHFUL)
    # both run to tol=1e-7 per row: 272 rows give ~3e-5 in the total
    assert b.result_.log_likelihood == pytest.approx(a.result_.log_likelihood, abs=1e-4)
    assert b.result_.n_parameters == a.result_.n_parameters


def test_mclust_models_with_restarts_and_explicit_starts():
    for params in ({"n_init": 3}, {"init_params": "kmeans", "n_init": 2}, {"init_params": "hc"},
                   {"n_init": 2, "init_params": "hc"}):
        fit = bg.EMGMM(3, covariance_type="VEV", random_state=0, **params).fit(IRIS)
        assert fit.result_.log_likelihood >= -186.07 - 0.005, params
    # warm start keeps the model
    fit = bg.EMGMM(2, covariance_type="EVE", random_state=0, warm_start=True).fit(IRIS)
    first = fit.result_.log_likelihood
    fit.fit(IRIS)
    assert fit.result_.log_likelihood >= first - 1e-8
    assert _member_of("EVE", fit.covariances_)


def test_bad_and_unsupported_inputs_are_refused_clearly():
    with pytest.raises(ValueError, match=r"covariance_type must be one of .*'EII'.*got 'VVX'"):
        bg.EMGMM(2, covariance_type="VVX").fit(IRIS)
    assert validate_covariance_type("EEE") == "tied"
    assert validate_covariance_type("VII") == "spherical"
    with pytest.raises(ValueError, match=r"'VEV' is an mclust model that only EMGMM fits.*"
                                         r"VVV \(full\)"):
        validate_covariance_type("VEV")
    with pytest.raises(ValueError, match="only EMGMM fits"):
        bg.compare_k(IRIS, [2], methods=("em", "advi"), covariance_type="EVE",
                     progressbar=False)


def test_result_keeps_the_model_through_netcdf_summary_and_report(tmp_path):
    r = bg.EMGMM(2, covariance_type="VEV", random_state=0).fit(IRIS).result_
    r.to_netcdf(tmp_path / "fit.nc")
    back = bg.load(tmp_path / "fit.nc")
    assert back.covariance_type == "VEV"
    assert back.n_parameters == 26
    assert back.bic() == pytest.approx(r.bic(), rel=1e-12)
    np.testing.assert_allclose(back.covariances.values, r.covariances.values, rtol=1e-12)
    assert "covariance_type  VEV" in str(r)
    summary = r.summary()["estimate"]
    assert summary[(1, "cov[sepal_length,petal_width]")] == pytest.approx(
        float(r.covariances[1, 0, 3]), rel=1e-12)
    path = bg.report(r, tmp_path / "report.html")
    assert "VEV model (ellipsoidal, equal shape" in path.read_text()


# --------------------------------------------------------------------------
# Model-based hierarchical clustering
# --------------------------------------------------------------------------


def _two_long_clusters(seed=0, n=60):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-10, 10, size=(2 * n, 1))
    noise = rng.normal(scale=0.15, size=(2 * n, 2))
    X = np.hstack([t, np.zeros_like(t)]) + noise
    X[n:, 1] += 1.5  # two parallel needles 1.5 apart, 20 long
    return X, np.repeat([0, 1], n)


def test_vvv_hc_separates_parallel_needles_that_ward_cuts_across():
    X, truth = _two_long_clusters()
    rows, labels = hc.partition(X, 2, "VVV")
    assert rows.size == X.shape[0]
    assert adjusted_rand_score(truth, labels) > 0.9  # one end point may join the other needle
    _, ward = hc.partition(X, 2, "EII")  # Ward's criterion mixes the needles' ends
    assert adjusted_rand_score(truth, ward) < 0.8


def test_eii_tree_is_scipys_ward_tree():
    from scipy.cluster.hierarchy import cut_tree, ward

    X = np.random.default_rng(3).normal(size=(40, 3))
    merges = hc.agglomerate(X, "EII")
    for k in (2, 3, 5):
        ours = hc.cut(merges, 40, k)
        theirs = cut_tree(ward(X), n_clusters=k).ravel()
        assert adjusted_rand_score(theirs, ours) == 1.0


def test_vvv_merge_costs_against_a_direct_criterion():
    # the first merges of the greedy tree each lower sum_k n_k log|(W_k + r I)/n_k| least
    X = np.random.default_rng(5).normal(size=(12, 2))
    merges = hc.agglomerate(X, "VVV", ridge=0.1)
    clusters = {i: [i] for i in range(12)}

    def crit(rows):
        pts = X[rows]
        w = (pts - pts.mean(0)).T @ (pts - pts.mean(0))
        return len(rows) * np.linalg.slogdet((w + 0.1 * np.eye(2)) / len(rows))[1]

    for i, j in merges[:8]:
        costs = {(a, b): crit(clusters[a] + clusters[b]) - crit(clusters[a]) - crit(clusters[b])
                 for a in clusters for b in clusters if a < b}
        assert costs[(i, j)] == pytest.approx(min(costs.values()), abs=1e-10)
        clusters[i] = clusters[i] + clusters.pop(j)


def test_large_data_are_clustered_on_a_subsample(monkeypatch):
    monkeypatch.setattr(hc, "MAX_ROWS", 50)
    X = np.random.default_rng(0).normal(size=(120, 2))
    rows, labels = hc.partition(X, 3, rng=np.random.default_rng(1))
    assert rows.size == 50 and len(set(rows.tolist())) == 50
    assert set(labels.tolist()) == {0, 1, 2}


# --------------------------------------------------------------------------
# compare_k with a model level: mclust's table
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_table_small():
    return bg.compare_k(IRIS, range(1, 4), methods="em", covariance_type="all",
                        progressbar=False)


def test_model_table_picks_vev2_on_iris(iris_table_small):
    cmp = iris_table_small
    assert cmp.table.index.names == ["method", "model", "K"]
    assert len(cmp.table) == 14 * 3
    best = cmp.best("bic")
    assert best == ModelK("VEV", 2)
    assert (best.model, best.K) == ("VEV", 2)
    assert "VEV, K=2" in cmp.verdict()
    bic = cmp.table.loc["em", "bic"]
    ranked = bic[cmp.table.loc["em", "status"] == "ok"].sort_values()
    # mclust's top three on iris: VEV,2; VEV,3; VVV,2
    assert list(ranked.index[:3]) == [("VEV", 2), ("VEV", 3), ("VVV", 2)]


def test_model_table_plot_and_report(iris_table_small, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    ax = iris_table_small.plot()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == list(parsimonious.MODELS)
    line = next(x for x in ax.get_lines() if x.get_label() == "VEV")
    np.testing.assert_allclose(line.get_ydata()[1], -561.7285, atol=1e-3)  # mclust's sign
    import matplotlib.pyplot as plt

    plt.close("all")
    path = bg.report(iris_table_small, tmp_path / "report.html")
    text = path.read_text()
    assert "VEV, K=2" in text


def test_a_list_of_models_gives_a_model_level():
    cmp = bg.compare_k(FAITHFUL, [2, 3], methods="em", covariance_type=["EEE", "full"],
                       progressbar=False)
    assert set(cmp.table.index.get_level_values("model")) == {"EEE", "full"}
    assert cmp.best("bic") == ModelK("EEE", 3)


def test_bayesian_methods_skip_the_models_they_do_not_have():
    # EVE has no Bayesian counterpart: no ADVI row is fitted (so no PyMC graph is built)
    cmp = bg.compare_k(FAITHFUL, [2], methods=("em", "advi"), covariance_type=["EVE"],
                       progressbar=False)
    assert list(cmp.table.index) == [("em", "EVE", 2)]


def test_cli_covariance_all(tmp_path, capsys):
    from bayesgmm import cli

    csv = tmp_path / "faithful.csv"
    FAITHFUL.to_csv(csv, index=False)
    status = cli.main(["fit", str(csv), "--k", "2-3", "--methods", "em", "--covariance", "all",
                       "--quiet", "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "EEE, K=3" in captured.out
    assert (tmp_path / "out" / "report.html").exists()


@pytest.mark.slow
def test_full_iris_table_of_14_models_and_k_1_to_9_picks_vev2():
    cmp = bg.compare_k(IRIS, range(1, 10), methods="em", covariance_type="all",
                       progressbar=False)
    assert len(cmp.table) == 14 * 9
    assert cmp.best("bic") == ModelK("VEV", 2)
    ranked = cmp.table.loc["em"].query("status == 'ok'")["bic"].sort_values()
    assert list(ranked.index[:3]) == [("VEV", 2), ("VEV", 3), ("VVV", 2)]


@pytest.mark.slow
def test_full_faithful_table_picks_eee3():
    cmp = bg.compare_k(FAITHFUL, range(1, 10), methods="em", covariance_type="all",
                       progressbar=False)
    assert cmp.best("bic") == ModelK("EEE", 3)
    assert cmp.table.loc[("em", "EEE", 3), "loglik"] >= -1126.36 - 0.005


def test_small_faithful_table_picks_eee3():
    cmp = bg.compare_k(FAITHFUL, range(2, 5), methods="em",
                       covariance_type=["EEE", "VVV", "VEE", "VVE", "EEV", "VEV", "EVV", "EVE"],
                       progressbar=False)
    assert cmp.best("bic") == ModelK("EEE", 3)


@pytest.mark.parametrize(("kind", "model"), list(parsimonious.SKLEARN_EQUIVALENTS.items()))
def test_bayesgmm_takes_the_four_mclust_names_as_aliases(kind, model):
    from bayesgmm.bayes import BayesGMM

    # the prior (NumPy sampler, no PyMC graph) of the alias is that of the scikit-learn name
    a = BayesGMM(2, covariance_type=kind).prior_predictive(FAITHFUL, draws=5, random_state=3)
    b = BayesGMM(2, covariance_type=model).prior_predictive(FAITHFUL, draws=5, random_state=3)
    np.testing.assert_array_equal(a["prior"]["covariances"].values,
                                  b["prior"]["covariances"].values)


def test_bayesgmm_refuses_the_other_mclust_models_naming_the_supported_ones():
    from bayesgmm.bayes import BayesGMM

    with pytest.raises(ValueError, match=r"'EVE' is an mclust model that only EMGMM fits.*"
                                         r"'full', 'tied', 'diag', 'spherical'.*EEE \(tied\)"):
        BayesGMM(2, covariance_type="EVE").fit(FAITHFUL)


def test_hc_start_for_scikit_learn_types_and_incomplete_data():
    X = IRIS.to_numpy().copy()
    X[::7, 1] = np.nan  # the start fills holes with column means; EM marginalises them
    fit = bg.EMGMM(3, covariance_type="diag", init_params="hc", random_state=0).fit(X)
    assert np.isfinite(fit.result_.log_likelihood)
    full = bg.EMGMM(2, covariance_type="full", init_params="hc").fit(IRIS)
    assert full.result_.log_likelihood == pytest.approx(-214.355, abs=5e-4)  # mclust VVV,2


def test_mclust_models_refuse_dask_input_clearly():
    da = pytest.importorskip("dask.array")
    with pytest.raises(ValueError, match="not fitted on Dask arrays yet"):
        bg.EMGMM(2, covariance_type="VEV").fit(da.from_array(IRIS.to_numpy(), chunks=50))
