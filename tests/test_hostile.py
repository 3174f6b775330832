"""Hostile input: every case fits correctly (warning where a setting is strained) or
raises a clear error. None may crash with a NumPy traceback or return NaN parameters.
The behaviour of each case is listed in docs/robustness.md."""

import warnings

import numpy as np
import pytest
from conftest import HOSTILE_ERRORS, HOSTILE_IDS

import bayesgmm as bg
from bayesgmm.exceptions import ConvergenceWarning, DataWarning

RNG = np.random.default_rng(0)


def _finite(model):
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.isfinite(getattr(model, name)).all(), name
    assert np.isfinite(model.result_.log_likelihood)


@pytest.mark.parametrize(("X", "k", "match"), HOSTILE_ERRORS, ids=HOSTILE_IDS)
def test_clear_error(X, k, match):
    # missing="error": NaN is refused as bad input here; fits with NaN are in test_missing.py
    with pytest.raises((ValueError, TypeError), match=match):
        bg.EMGMM(k, random_state=0, missing="error").fit(X)


def test_scales_1e_minus_8_and_1e8_fit_with_a_warning():
    X = np.column_stack([RNG.normal(size=300) * 1e-8, RNG.normal(size=300) * 1e8])
    X[:150] += [5e-8, 5e8]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # the floor also collapses x0
        with pytest.warns(DataWarning, match=r"reg_covar=1e-06 .* 'x0'"):
            bg.EMGMM(2, random_state=0).fit(X)
    model = bg.EMGMM(2, reg_covar=0.0, random_state=0).fit(X)  # the fix the warning names
    _finite(model)
    # exact units: the two clusters are found, with sds of 1e-8 and 1e8
    np.testing.assert_allclose(np.sort(model.weights_), [0.5, 0.5], atol=0.05)
    sds = np.sqrt(np.diagonal(model.covariances_, axis1=1, axis2=2))
    np.testing.assert_allclose(sds / [1e-8, 1e8], 1.0, rtol=0.2)


def test_100000_duplicated_rows():
    X = np.vstack([np.repeat([[1.0, 2.0]], 100_000, axis=0), RNG.normal(size=(60, 2))])
    with pytest.warns(ConvergenceWarning, match="collapsed"):
        model = bg.EMGMM(2, random_state=0).fit(X)
    _finite(model)
    # one component sits on the duplicated point with ~all of its mass
    heavy = int(np.argmax(model.weights_))
    np.testing.assert_allclose(model.means_[heavy], [1.0, 2.0], atol=1e-3)


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float16])
def test_integer_and_low_precision_input(dtype, blobs):
    X = (blobs.X * 100).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = bg.EMGMM(3, random_state=0).fit(X)
    _finite(model)
    assert model.means_.dtype == np.float64


def test_non_contiguous_and_read_only_arrays(blobs):
    wide = np.repeat(blobs.X, 2, axis=1)[:, ::2]  # strided view, equal to blobs.X
    assert not wide.flags.c_contiguous
    frozen = blobs.X.copy()
    frozen.setflags(write=False)
    fortran = np.asfortranarray(blobs.X)
    reference = bg.EMGMM(3, random_state=0).fit(blobs.X)
    for X in (wide, frozen, fortran):
        model = bg.EMGMM(3, random_state=0).fit(X)
        np.testing.assert_allclose(model.means_, reference.means_, rtol=1e-12)
        model.predict(X)
    assert not frozen.flags.writeable


def test_single_feature_and_two_rows():
    X = np.array([[0.0], [1.0]])
    model = bg.EMGMM(1).fit(X)
    _finite(model)
    np.testing.assert_allclose(model.means_, [[0.5]])
