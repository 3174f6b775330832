"""GMMResult: dims, criteria, tables, display and the netCDF round trip."""

import errno
import json
import os

import h5netcdf
import numpy as np
import pytest
import xarray as xr
from conftest import COVARIANCE_TYPES
from sklearn.mixture import GaussianMixture

import bayesgmm as bg
from bayesgmm import criteria
from bayesgmm.exceptions import DifferentModelError


@pytest.fixture(scope="module")
def fitted(faithful):
    return bg.EMGMM(2, random_state=0).fit(faithful)


def test_dims_follow_the_design(fitted):
    r = fitted.result_
    assert r.weights.dims == ("component",)
    assert r.means.dims == ("component", "feature")
    assert r.covariances.dims == ("component", "feature", "feature_bis")
    assert r.responsibilities.dims == ("obs", "component")
    assert r.labels.dims == ("obs",)
    np.testing.assert_array_equal(r.labels.values, fitted.predict(bg.datasets.load_faithful()))


def test_parameter_counts_match_scikit_learn_table():
    # scikit-learn's test_gaussian_mixture_n_parameters: 5 features, 2 components.
    expected = {"spherical": 13, "diag": 21, "tied": 26, "full": 41}
    for kind, count in expected.items():
        assert criteria.n_parameters(2, 5, kind) == count


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_aic_bic_match_scikit_learn_at_the_same_parameters(iris, covariance_type):
    model = bg.EMGMM(3, covariance_type=covariance_type, random_state=0).fit(iris)
    ref = GaussianMixture(3, covariance_type=covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        setattr(ref, name, getattr(model, name))
    # rtol 1e-10: same parameters, two implementations of the same density.
    assert model.result_.aic() == pytest.approx(ref.aic(iris.values), rel=1e-10)
    assert model.result_.bic() == pytest.approx(ref.bic(iris.values), rel=1e-10)


def test_icl_adds_twice_the_hard_assignment_entropy(fitted):
    r = fitted.result_
    resp = r.responsibilities.values
    penalty = -2 * np.log(resp[np.arange(len(resp)), resp.argmax(1)]).sum()
    assert r.icl() == pytest.approx(r.bic() + penalty, rel=1e-12)
    assert r.icl() >= r.bic()


def test_summary_lists_every_parameter(fitted):
    table = fitted.result_.summary()
    # per component: weight, 2 means, 3 covariance entries
    assert table.shape == (12, 1)
    assert table.loc[(1, "mean[waiting]"), "estimate"] == pytest.approx(fitted.means_[1, 1])
    assert table.loc[(0, "cov[eruptions,waiting]"), "estimate"] == pytest.approx(
        fitted.covariances_[0, 0, 1])


def test_assignment_uncertainty_lists_unsure_points(fitted):
    table = fitted.result_.assignment_uncertainty()
    assert list(table.columns) == ["label", "probability", "entropy"]
    assert (table["probability"] >= 0.5).all()
    unsure = table.sort_values("probability").index[0]
    assert table.loc[unsure, "entropy"] == table["entropy"].max()


def test_bayesian_methods_explain_they_need_a_posterior(fitted):
    for method in ("waic", "loo"):
        with pytest.raises(ValueError, match="BayesGMM"):
            getattr(fitted.result_, method)()
    with pytest.raises(ValueError, match="prob must be"):
        fitted.result_.responsibility_interval(prob=1.5)


def test_repr_and_html(fitted):
    text = repr(fitted.result_)
    assert "GMMResult" in text and "waiting" in text and "BIC" in text
    page = fitted.result_._repr_html_()
    assert "<table>" in page and "<script" not in page
    assert "&lt;" not in text


def test_netcdf_round_trip_is_lossless(fitted, tmp_path):
    r = fitted.result_
    path = r.to_netcdf(tmp_path / "fit.nc")
    back = bg.load(path)
    for name in ("weights", "means", "covariances", "responsibilities", "data"):
        xr.testing.assert_identical(getattr(back, name), getattr(r, name))
    assert back.config == json.loads(json.dumps(r.config))
    assert back.config == fitted.get_params()
    assert (back.log_likelihood, back.method, back.converged, back.n_iter) == (
        r.log_likelihood, r.method, r.converged, r.n_iter)
    assert back.bic() == r.bic()


def test_failed_write_leaves_the_old_file(fitted, tmp_path, monkeypatch):
    path = fitted.result_.to_netcdf(tmp_path / "fit.nc")
    before = path.read_bytes()

    def broken(fd):
        raise OSError(errno.EIO, "Input/output error")

    # the new bytes are in the temporary file when flushing them to disk fails
    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="Input/output error") as info:
        fitted.result_.to_netcdf(path)
    assert info.value.errno == errno.EIO
    assert info.value.filename == str(path) and ".tmp" not in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def test_failed_encoding_leaves_the_old_file(fitted, tmp_path, monkeypatch):
    path = fitted.result_.to_netcdf(tmp_path / "fit.nc")
    before = path.read_bytes()

    def broken(self, *args, **kwargs):
        raise ValueError("cannot encode")

    monkeypatch.setattr(xr.DataTree, "to_netcdf", broken)
    with pytest.raises(ValueError, match="cannot encode"):
        fitted.result_.to_netcdf(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fit.nc"]


def test_load_rejects_foreign_and_tampered_files(fitted, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        bg.load(tmp_path / "missing.nc")
    foreign = tmp_path / "foreign.nc"
    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(foreign, engine="h5netcdf")
    with pytest.raises(DifferentModelError, match="not written by bayesgmm"):
        bg.load(foreign)
    text = tmp_path / "text.nc"
    text.write_text("not a netcdf file")
    with pytest.raises(DifferentModelError, match="not a readable netCDF"):
        bg.load(text)
    tampered = fitted.result_.to_netcdf(tmp_path / "tampered.nc")
    with h5netcdf.File(tampered, "a") as handle:
        handle.attrs["config"] = handle.attrs["config"].replace('"n_components": 2',
                                                                '"n_components": 3')
    with pytest.raises(DifferentModelError, match="do not match the SHA-256 digest"):
        bg.load(tampered)


def test_loaded_result_predicts_like_the_estimator(fitted, faithful, tmp_path):
    back = bg.load(fitted.result_.to_netcdf(tmp_path / "fit.nc"))
    np.testing.assert_array_equal(back.predict(faithful), fitted.predict(faithful))
    np.testing.assert_allclose(back.predict_proba(faithful), fitted.predict_proba(faithful),
                               rtol=1e-10, atol=1e-300)
    np.testing.assert_allclose(back.score_samples(faithful), fitted.score_samples(faithful),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="fitted with 2"):
        back.predict(faithful[["waiting"]])


def test_load_rejects_a_truncated_file(fitted, tmp_path):
    path = fitted.result_.to_netcdf(tmp_path / "fit.nc")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DifferentModelError, match="not a readable netCDF"):
        bg.load(path)
