"""EMGMM: scikit-learn contract, published reference fits, bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import COVARIANCE_TYPES
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

import bayesgmm as bg
from bayesgmm.exceptions import ConvergenceWarning


@parametrize_with_checks([bg.EMGMM()])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------
# Published and reference fits
# --------------------------------------------------------------------------


@pytest.mark.parametrize(("k", "mclust_bic"), [(2, 574.018), (3, 580.84)])
def test_iris_full_reaches_mclust_vvv(iris, k, mclust_bic):
    # mclust prints BIC with the opposite sign: -574.018 (K=2) and -580.84 (K=3).
    model = bg.EMGMM(n_components=k, covariance_type="full", n_init=10, random_state=0)
    result = model.fit(iris).result_
    assert result.bic() <= mclust_bic
    assert model.bic(iris) == pytest.approx(result.bic(), rel=1e-12)


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical", "full"])
@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_iris_reaches_scikit_learn_likelihood(iris, covariance_type, k):
    ours = bg.EMGMM(k, covariance_type=covariance_type, n_init=10, random_state=0).fit(iris)
    ref = GaussianMixture(k, covariance_type=covariance_type, n_init=10, random_state=0).fit(iris)
    ref_ll = ref.score(iris) * len(iris)
    # At least as high, up to 1e-9 relative rounding.
    assert ours.result_.log_likelihood >= ref_ll - 1e-9 * abs(ref_ll)


def test_iris_bic_picks_two_components(iris):
    bics = [bg.EMGMM(k, n_init=10, random_state=0).fit(iris).result_.bic() for k in range(1, 7)]
    assert int(np.argmin(bics)) + 1 == 2


def test_old_faithful_waiting_matches_published_fit(faithful):
    # mixtools normalmixEM / mclust on faithful$waiting, K=2: weights 0.361/0.639,
    # means 54.61/80.09, sds 5.87/5.87, log-likelihood -1034.002 (printed precision).
    model = bg.EMGMM(n_components=2, random_state=0).fit(faithful[["waiting"]])
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.weights_[order], [0.361, 0.639], atol=5e-4)
    np.testing.assert_allclose(model.means_[order, 0], [54.61, 80.09], atol=0.01)
    np.testing.assert_allclose(np.sqrt(model.covariances_[order, 0, 0]), [5.87, 5.87],
                               atol=0.005)
    assert model.result_.log_likelihood == pytest.approx(-1034.002, abs=5e-4)


def test_recovers_simulated_mixture(blobs):
    model = bg.EMGMM(3, random_state=0).fit(blobs.X)
    assert adjusted_rand_score(blobs.labels, model.predict(blobs.X)) > 0.95
    # sampling error of 300 rows: weights to ~0.05, means to ~0.25 sd
    np.testing.assert_allclose(np.sort(model.weights_), np.sort(blobs.weights), atol=0.06)
    order = [int(np.argmin(((model.means_ - m) ** 2).sum(1))) for m in blobs.means]
    np.testing.assert_allclose(model.means_[order], blobs.means, atol=0.35)


# --------------------------------------------------------------------------
# scikit-learn contract details
# --------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_attribute_shapes_and_predict(blobs, covariance_type):
    model = bg.EMGMM(3, covariance_type=covariance_type, random_state=0).fit(blobs.X)
    shapes = {"full": (3, 2, 2), "tied": (2, 2), "diag": (3, 2), "spherical": (3,)}
    assert model.covariances_.shape == shapes[covariance_type]
    assert model.precisions_.shape == shapes[covariance_type]
    proba = model.predict_proba(blobs.X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(blobs.X), proba.argmax(1))
    assert model.score(blobs.X) == pytest.approx(model.score_samples(blobs.X).mean())
    assert model.result_.log_likelihood == pytest.approx(model.score_samples(blobs.X).sum())


def test_fit_predict_equals_fit_then_predict(blobs, global_random_seed):
    a = bg.EMGMM(3, random_state=global_random_seed).fit_predict(blobs.X)
    b = bg.EMGMM(3, random_state=global_random_seed).fit(blobs.X).predict(blobs.X)
    np.testing.assert_array_equal(a, b)


def test_same_random_state_gives_identical_fits(iris):
    a = bg.EMGMM(3, n_init=3, random_state=42).fit(iris)
    b = bg.EMGMM(3, n_init=3, random_state=42).fit(iris)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)


def test_warm_start_climbs_monotonically(blobs):
    model = bg.EMGMM(3, max_iter=1, warm_start=True, random_state=0, init_params="random")
    bounds = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(15):
            bounds.append(model.fit(blobs.X).lower_bound_)
    assert np.all(np.diff(bounds) >= -1e-12)
    assert bounds[-1] > bounds[0]


def test_user_initial_parameters_are_used(blobs):
    means = blobs.means + 0.1
    model = bg.EMGMM(3, means_init=means, weights_init=blobs.weights,
                     precisions_init=np.linalg.inv(blobs.covariances), max_iter=0)
    model.fit(blobs.X)  # max_iter=0 asks for the start itself: no warning (errors are on)
    np.testing.assert_allclose(model.means_, means)
    np.testing.assert_allclose(model.covariances_, blobs.covariances, rtol=1e-10)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_init_finds_the_clusters(blobs, init_params):
    # "random" starts every component near the data mean: it needs several restarts.
    model = bg.EMGMM(3, init_params=init_params, n_init=10, random_state=0).fit(blobs.X)
    assert adjusted_rand_score(blobs.labels, model.predict(blobs.X)) > 0.95


def test_n_init_keeps_the_best_run(iris):
    single = [bg.EMGMM(4, random_state=s).fit(iris).result_.log_likelihood for s in range(5)]
    best = bg.EMGMM(4, n_init=10, random_state=0).fit(iris).result_.log_likelihood
    assert best >= max(single) - 1e-6 or best >= np.median(single)


def test_convergence_warning_says_what_to_change(iris):
    with pytest.warns(ConvergenceWarning, match="Increase max_iter"):
        bg.EMGMM(3, max_iter=2, random_state=0).fit(iris)


def test_collapsed_fits_are_avoided_or_reported():
    # 40 points, five of them repeated exactly: a component can sit on the repeats.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(35, 2)), np.tile([[3.0, 3.0]], (5, 1))])
    with pytest.warns(ConvergenceWarning, match="collapsed"):
        bg.EMGMM(4, n_init=3, random_state=0, init_params="random_from_data").fit(
            np.vstack([X, np.tile([[-3.0, 3.0]], (2, 1))])[:, :1].repeat(2, 1)
        )


def test_dataframe_columns_become_features(faithful):
    model = bg.EMGMM(2, random_state=0).fit(faithful)
    assert model.result_.feature_names == ["eruptions", "waiting"]
    np.testing.assert_array_equal(model.feature_names_in_, ["eruptions", "waiting"])


def test_sample_draws_from_the_fitted_mixture(blobs):
    model = bg.EMGMM(3, random_state=0).fit(blobs.X)
    X, y = model.sample(20000)
    assert X.shape == (20000, 2)
    # weights within 4 binomial standard errors of sqrt(0.25/20000) ~ 0.0035
    np.testing.assert_allclose(np.bincount(y, minlength=3) / 20000, model.weights_, atol=0.015)
    for j in range(3):
        np.testing.assert_allclose(X[y == j].mean(0), model.means_[j], atol=0.1)


# --------------------------------------------------------------------------
# Bad input: a clear ValueError naming the parameter
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("X", "match"),
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [0.0, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [0.0, 1.0]]), "inf"),
        (np.arange(10.0), "2-D"),
        (np.ones((0, 2)), "0 sample"),
        (np.array([[1.0, 2.0], [1.0, 3.0], [1.0, 4.0]]), "zero variance"),
    ],
    ids=["nan", "inf", "1d", "empty", "zero-variance"],
)
def test_bad_data_raises_clear_error(X, match):
    with pytest.raises(ValueError, match=match):
        bg.EMGMM(1, missing="error").fit(X)  # NaN as a missing value: test_missing.py


def test_fewer_samples_than_components():
    with pytest.raises(ValueError, match=r"n_components=5 must be <= n_samples"):
        bg.EMGMM(5).fit(np.random.default_rng(0).normal(size=(3, 2)))


def test_non_numeric_dataframe_column_is_named():
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "name": ["x", "y", "z"]})
    with pytest.raises(ValueError, match=r"'name' \(object\)|'name' \(str"):
        bg.EMGMM(1).fit(frame)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_components": 0}, r"n_components must be an integer >= 1, got 0"),
        ({"n_components": 2.5}, r"n_components must be an integer >= 1, got 2.5"),
        ({"covariance_type": "banana"}, r"covariance_type must be one of .*'banana'"),
        ({"init_params": "best"}, r"init_params must be one of .*'best'"),
        ({"reg_covar": -1.0}, r"reg_covar must be a finite number >= 0, got -1.0"),
        ({"tol": float("nan")}, r"tol must be a finite number >= 0"),
        ({"n_init": 0}, r"n_init must be an integer >= 1, got 0"),
        ({"max_iter": -1}, r"max_iter must be an integer >= 0, got -1"),
        ({"means_init": np.zeros((3, 3))}, r"means_init must have shape \(2, 2\)"),
        ({"weights_init": [0.2, 0.2]}, r"weights_init must be non-negative and sum to 1"),
        ({"precisions_init": -np.ones((2, 2, 2))}, r"precisions_init\[0\] must be symmetric"),
    ],
)
def test_bad_parameters_raise_clear_errors(blobs, params, match):
    params = {"n_components": 2, **params}
    with pytest.raises(ValueError, match=match):
        bg.EMGMM(**params).fit(blobs.X)


def test_predict_checks_feature_count(blobs):
    model = bg.EMGMM(2, random_state=0).fit(blobs.X)
    with pytest.raises(ValueError, match="expecting 2 features"):
        model.predict(np.zeros((3, 3)))
