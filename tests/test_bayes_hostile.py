"""Hostile input for BayesGMM: a clear error, or a fit without NaN parameters.

The same catalogue as tests/test_hostile.py (EM).  Fits are very short NUTS
runs on the compiled kernel (and a few ADVI fits), so the file stays within a
few tens of seconds.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import HOSTILE_ERRORS, HOSTILE_IDS

import bayesgmm as bg
from bayesgmm import posterior
from bayesgmm.exceptions import ConvergenceWarning

RNG = np.random.default_rng(0)
SHORT = {"draws": 30, "tune": 40, "chains": 1, "progressbar": False}


def _two_blobs(n=80, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    X[: n // 2] += [6.0, 0.0]
    return X


def _fit(X, k=2, **kwargs):
    est = bg.BayesGMM(k, random_state=0, **{**SHORT, **kwargs})
    with warnings.catch_warnings():
        # 30 draws of one chain: diagnostics are not the point here
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


def _finite(est):
    r = est.result_
    for name in ("weights", "means", "covariances"):
        assert np.isfinite(getattr(r, name).values).all(), name
    for name in ("weights_", "means_", "covariances_"):
        assert np.isfinite(getattr(est, name)).all(), name
    assert np.isfinite(r.responsibilities.values).all()
    ll = r.idata["log_likelihood"].to_dataset()[posterior.LOG_LIK_VAR].values
    assert np.isfinite(ll).all()
    assert np.isfinite(r.log_likelihood)


@pytest.mark.parametrize(
    ("X", "k", "match"),
    [*HOSTILE_ERRORS, (np.arange(10.0), 1, "2-D")],
    ids=[*HOSTILE_IDS, "1-d"],
)
@pytest.mark.parametrize("method", ["nuts", "advi"])
def test_clear_error(X, k, match, method):
    # raised by validation before any EM fit or compilation; missing="error" makes NaN bad
    # input here (fits with NaN: test_missing.py)
    with pytest.raises((ValueError, TypeError), match=match):
        bg.BayesGMM(k, method=method, progressbar=False, missing="error").fit(X)


def test_k_above_distinct_points_fails_before_the_em_reference(monkeypatch):
    # the check is BayesGMM's own: the EM reference is never started
    from bayesgmm.bayes import estimator

    def boom(*args, **kwargs):  # pragma: no cover - must not run
        raise AssertionError("EM reference started")

    monkeypatch.setattr(estimator, "EMGMM", boom)
    X = np.repeat([[0.0, 1.0], [1.0, 0.0]], 10, axis=0)
    with pytest.raises(ValueError, match="exceeds the 2 distinct rows"):
        bg.BayesGMM(3, progressbar=False).fit(X)


def test_prediction_rejects_hostile_input():
    est = _fit(_two_blobs())
    with pytest.raises(ValueError, match="1 inf"):
        est.predict_proba(np.array([[0.0, np.inf]]))
    # NaN is a missing entry: the row's observed coordinate alone sets its probabilities
    proba = est.predict_proba(np.array([[0.0, np.nan], [0.0, 0.0]]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="feature"):
        est.predict(np.zeros((3, 3)))


def test_scales_1e_minus_8_and_1e8():
    X = _two_blobs(120, seed=1) * [1e-8, 1e8]
    est = _fit(X)
    _finite(est)
    # the data are standardized inside the model, so units do not matter: the two
    # clusters (means 6 sd apart along x0) are found, with sds of 1e-8 and 1e8;
    # 25 % allows for a short chain on 60 points per cluster
    assert np.allclose(np.sort(est.weights_), [0.5, 0.5], atol=0.1)
    sds = np.sqrt(np.diagonal(est.covariances_, axis1=1, axis2=2))
    np.testing.assert_allclose(sds / [1e-8, 1e8], 1.0, rtol=0.25)
    np.testing.assert_allclose(np.sort(est.means_[:, 0]) / 1e-8, [0.0, 6.0], atol=0.5)


def test_all_points_duplicated_100000_rows():
    # 1e5 rows that are 25 distinct points repeated: the "auto" floor (squared
    # resolution) keeps every covariance proper; the fit must be finite
    base = _two_blobs(50, seed=2)[::2]
    X = np.repeat(base, 4000, axis=0)
    assert X.shape == (100_000, 2)
    est = _fit(X, draws=10, tune=20)
    _finite(est)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float16])
def test_integer_and_low_precision_input(dtype):
    X = np.round(_two_blobs() * 10)  # integer-valued data
    est = _fit(X.astype(dtype))
    _finite(est)
    ref = _fit(X)
    # every value is an exact small integer in each dtype, so the float64 array the
    # model sees is identical and so are the draws (same seed): exact equality
    np.testing.assert_array_equal(est.result_.means.values, ref.result_.means.values)


def test_float32_fractional_input_matches_rounded_float64():
    X = _two_blobs().astype(np.float32)
    est = _fit(X)
    _finite(est)
    # float32 is converted to float64 once: the same as fitting that conversion
    ref = _fit(X.astype(np.float64))
    np.testing.assert_array_equal(est.result_.means.values, ref.result_.means.values)


def test_non_contiguous_and_read_only_arrays():
    base = _two_blobs(160)
    ref = _fit(np.ascontiguousarray(base[::2]))
    strided = base[::2]
    fortran = np.asfortranarray(base[::2])
    read_only = np.ascontiguousarray(base[::2])
    read_only.setflags(write=False)
    wide = np.column_stack([base[::2], np.zeros(80)])[:, :2]  # non-contiguous rows
    for X in (strided, fortran, read_only, wide):
        est = _fit(X)
        _finite(est)
        # the same float64 values: the same draws (same seed), exactly
        np.testing.assert_array_equal(est.result_.means.values, ref.result_.means.values)
    assert not read_only.flags.writeable  # not modified in place


def test_pandas_numeric_frame_and_bool_column():
    X = pd.DataFrame(_two_blobs(), columns=["length", "width"])
    est = _fit(X)
    _finite(est)
    assert list(est.result_.means["feature"].values) == ["length", "width"]
    bad = X.assign(flag=X["length"] > 0)
    with pytest.raises(ValueError, match="'flag'"):
        bg.BayesGMM(2, progressbar=False).fit(bad)


def test_advi_on_hostile_scales():
    # ADVI path on mixed scales (also standardized): finite parameters
    X = _two_blobs(80, seed=3) * [1e8, 1e-8]
    est = bg.BayesGMM(2, method="advi", draws=50, n_steps=3000, random_state=0,
                      progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 3000 steps may not converge
        est.fit(X)
    _finite(est)


def test_single_feature_and_two_rows():
    X = np.array([[0.0], [1.0]])
    est = _fit(X, k=1)
    _finite(est)
    est2 = _fit(np.array([[0.0], [1.0]]), k=2)  # K = number of distinct points
    _finite(est2)
