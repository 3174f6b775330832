"""Shared fixtures and the ``--run-slow`` switch."""

import numpy as np
import pandas as pd
import pytest

import bayesgmm as bg
from bayesgmm._constants import COVARIANCE_TYPES  # noqa: F401 - shared by the test modules

_RNG = np.random.default_rng(0)


def with_holes(X, share, seed=0):
    """``X`` with each entry missing (NaN) with probability ``share`` (MCAR); no row left empty."""
    out = np.array(X, dtype=float)
    holes = np.random.default_rng(seed).random(out.shape) < share
    holes[holes.all(axis=1), 0] = False
    out[holes] = np.nan
    return out

#: Hostile inputs that every estimator must reject: (X, n_components, error pattern).
HOSTILE_ERRORS = [
    (np.array([[0.0, np.nan], [1.0, 2.0], [2.0, 1.0]]), 1, "1 NaN and 0 inf"),
    (np.array([[0.0, -np.inf], [1.0, 2.0], [2.0, 1.0]]), 1, "0 NaN and 1 inf"),
    (np.empty((0, 3)), 1, "0 sample"),
    (np.empty((5, 0)), 1, "0 feature"),
    (np.array([[1.0, 2.0]]), 1, "1 sample"),
    (np.ones((20, 2)), 1, "zero variance"),
    (np.column_stack([_RNG.normal(size=20), np.full(20, 3.0)]), 2, r"\['column 1'\]"),
    (np.repeat([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], 4, axis=0), 5, "3 distinct rows"),
    (pd.DataFrame({"a": _RNG.normal(size=10),
                   "b": pd.Categorical(list("xyxyxyxyxy"))}), 1, r"'b' \(category\)"),
    (pd.DataFrame({"a": _RNG.normal(size=3), "b": ["u", "v", "w"]}), 1, r"'b'"),
    (np.array([["1.0", "x"], ["2.0", "y"]], dtype=object), 1, "numbers only"),
]
HOSTILE_IDS = ["nan", "inf", "empty", "no-features", "single-row", "all-identical",
               "zero-variance-column", "k-above-distinct", "categorical", "object-column",
               "strings"]


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run tests marked slow (long statistical checks)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=range(3), ids=lambda s: f"seed{s}")
def global_random_seed(request):
    """A few seeds: tests that use it must pass for any of them."""
    return request.param


@pytest.fixture(scope="session")
def iris():
    return bg.datasets.load_iris()


@pytest.fixture(scope="session")
def faithful():
    return bg.datasets.load_faithful()


@pytest.fixture(scope="session")
def short_nuts_faithful(faithful):
    """Old Faithful K=2 by NUTS with 2 x 30 draws: a fit that fails its own diagnostics."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.BayesGMM(2, draws=30, tune=30, chains=2, random_state=3,
                           progressbar=False).fit(faithful).result_


@pytest.fixture(scope="session")
def blobs():
    """Three well-separated 2-D components, 300 rows."""
    return bg.datasets.make_blobs_gmm(300, 3, 2, random_state=0)


def random_state(covariance_type, n_components=3, n_features=4, seed=0):
    """Random valid EM parameters for naive-reference checks."""
    from bayesgmm import em

    rng = np.random.default_rng(seed)
    k, d = n_components, n_features
    weights = rng.dirichlet(np.ones(k) * 2)
    means = rng.normal(0, 2, (k, d))
    if covariance_type == "full":
        a = rng.normal(size=(k, d, d))
        covs = a @ a.transpose(0, 2, 1) + 0.5 * np.eye(d)
    elif covariance_type == "tied":
        a = rng.normal(size=(d, d))
        covs = a @ a.T + 0.5 * np.eye(d)
    elif covariance_type == "diag":
        covs = rng.uniform(0.3, 2.0, (k, d))
    else:
        covs = rng.uniform(0.3, 2.0, k)
    pc = em.precision_cholesky(covs, covariance_type)
    return em.EMState(weights, means, covs, pc, covariance_type)


@pytest.fixture(scope="session")
def spurious_em_fits():
    """EM fits K=1, 2, 3 of two clusters plus five copies of one point; K=3 is started on
    the copies and collapses onto them: bounded only by reg_covar, it has the best AIC and
    BIC but fails its checks (EMGMM's restarts avoid it; a user's start need not)."""
    import warnings

    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2)),
                        np.full((5, 2), 3.0)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {("em", k): bg.EMGMM(k, n_init=5, random_state=0, reg_covar=1e-9).fit(X).result_
                for k in (1, 2)}
        fits[("em", 3)] = bg.EMGMM(
            3, reg_covar=1e-9, init_params="kmeans", weights_init=[0.45, 0.45, 0.1],
            means_init=[[0.0, 0.0], [6.0, 6.0], [3.0, 3.0]],
            precisions_init=np.stack([np.eye(2), np.eye(2), np.eye(2) * 1e4]),
        ).fit(X).result_
    return fits
