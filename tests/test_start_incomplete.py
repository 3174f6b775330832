"""The default one-run start on incomplete data (docs/missing.md, "The mclust models").

With ``n_init=1`` and ``init_params="auto"`` an mclust model starts from
model-based hierarchical clustering (:mod:`bayesgmm.hc`) of the data with the
missing entries filled in. Filled with column means, iris with 20 % MCAR
gave VVV, VVI, VEE and VEV a collapsed component (VVV: -210.9 against the
sound -188.35) in seeds 0, 3 (VEV) and 6; filled with the conditional means
under one full Gaussian, every fit is sound and close to the best of 10 runs.
"""

import warnings

import numpy as np
import pytest
from conftest import with_holes

import bayesgmm as bg
from bayesgmm import estimators
from bayesgmm.compare import fit_status

MODELS = ("VVV", "VVI", "VEE", "VEV", "full")
#: with_holes seeds: 0 and 6 collapsed all four mclust models from the column-mean fill,
#: 3 collapsed VEV.
SEEDS = (0, 3, 6)
#: One run is not a global search: on these seeds the sound one-run fits lie up to
#: 3.3 below the best of 10 runs ("full", seed 6: -182.92 against -179.68; 150 rows),
#: the collapsed ones 9.4 (VEV, seed 3) to 60 below.
GAP = 4.0


@pytest.fixture(scope="module")
def iris_array():
    return bg.datasets.load_iris().to_numpy()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("model", MODELS)
def test_default_start_is_sound_on_incomplete_iris(iris_array, model, seed):
    X = with_holes(iris_array, 0.2, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bg.ConvergenceWarning)  # no collapse warning
        one = bg.EMGMM(3, covariance_type=model, random_state=0).fit(X)
    assert fit_status(one.result_) == []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bg.ConvergenceWarning)
        best = bg.EMGMM(3, covariance_type=model, n_init=10, random_state=0).fit(X)
    assert fit_status(best.result_) == []
    gap = best.result_.log_likelihood - one.result_.log_likelihood
    assert gap < GAP, (model, seed, one.result_.log_likelihood, best.result_.log_likelihood)


def test_complete_data_keep_their_start(iris_array, monkeypatch):
    # the fill only applies to missing entries: complete data go to hc unchanged and
    # keep mclust's published VEV,2 value (tests/test_mclust.py)
    def fail(self, X):
        raise AssertionError("filled complete data")

    monkeypatch.setattr(bg.EMGMM, "_filled", fail)
    fit = bg.EMGMM(2, covariance_type="VEV", random_state=0).fit(iris_array)
    assert fit.result_.log_likelihood == pytest.approx(-215.726, abs=5e-4)


def test_column_mean_fill_collapses_without_the_rescue(iris_array, monkeypatch):
    # the failure this file guards against, reproduced with the earlier fill and no rescue
    monkeypatch.setattr(bg.EMGMM, "_filled", _column_means)
    monkeypatch.setattr(estimators, "RESCUE_RUNS", 0)
    with pytest.warns(bg.ConvergenceWarning, match="in every one of the 1 runs"):
        fit = bg.EMGMM(3, covariance_type="VVV", random_state=0).fit(
            with_holes(iris_array, 0.2, 0))
    assert fit_status(fit.result_) != []
    assert fit.result_.log_likelihood == pytest.approx(-210.92, abs=0.01)


def test_a_collapsed_single_run_is_followed_by_screened_restarts(iris_array, monkeypatch):
    # the second line of defence: the same collapsed start, then screened restarts until
    # one is sound (screened on the conditional-mean fill); it reaches the best of
    # n_init=10 (-188.35, docs/missing.md)
    start = bg.EMGMM._init_state

    def column_mean_start(self, *args):
        with monkeypatch.context() as m:
            m.setattr(bg.EMGMM, "_filled", _column_means)
            return start(self, *args)

    monkeypatch.setattr(bg.EMGMM, "_init_state", column_mean_start)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bg.ConvergenceWarning)
        fit = bg.EMGMM(3, covariance_type="VVV", random_state=0).fit(
            with_holes(iris_array, 0.2, 0))
    assert 1 <= fit.n_rescue_runs_ <= estimators.RESCUE_RUNS
    assert fit_status(fit.result_) == []
    assert fit.result_.log_likelihood == pytest.approx(-188.35, abs=GAP)


def test_sound_single_runs_are_not_rescued(iris_array):
    fit = bg.EMGMM(3, covariance_type="VVV", random_state=0).fit(with_holes(iris_array, 0.2, 0))
    assert fit.n_rescue_runs_ == 0


def _column_means(self, X):
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)
