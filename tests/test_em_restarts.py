"""EM starts and restarts: unit-free starts, the default restart mix, spurious runs."""

import warnings

import numpy as np
import pytest
from sklearn.datasets import load_wine

import bayesgmm as bg
from bayesgmm import em, initialization
from bayesgmm.exceptions import ConvergenceWarning
from bayesgmm.initialization import INIT_PARAMS


@pytest.fixture(scope="module")
def wine():
    return load_wine().data  # 178 x 13, columns from ~0.1 (hue) to ~1000 (proline)


def _fit(X, k, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return bg.EMGMM(k, **params).fit(X)


# --------------------------------------------------------------------------
# The fit does not depend on the units
# --------------------------------------------------------------------------


@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_wine_fit_is_the_same_in_raw_and_standardized_units(wine, init_params):
    # A full-covariance mixture is affine equivariant: on z = (x - m) / s the maximum
    # log-likelihood is the raw one + N sum(log s). Before the starts were standardized,
    # the raw fit (n_init=10) reached -2915.75 and the standardized one -2797.88.
    sd = wine.std(axis=0)
    z = (wine - wine.mean(axis=0)) / sd
    raw = _fit(wine, 3, n_init=10, init_params=init_params, random_state=0)
    std = _fit(z, 3, n_init=10, init_params=init_params, random_state=0)
    mapped = std.result_.log_likelihood - len(wine) * np.log(sd).sum()
    # 1e-3: EM stops when the total gains < N * tol = 1.8e-5 per iteration, and
    # reg_covar=1e-6 is added in each fit's own units; both move the total by ~1e-5.
    assert raw.result_.log_likelihood == pytest.approx(mapped, abs=1e-3)
    # The same solution, not just the same value: the means agree in z units. 1e-3 sd: EM
    # stopped within ~1e-7 per row of the maximum, i.e. ~sqrt(1e-7) ~ 3e-4 sd on a ridge.
    raw_z = (raw.means_ - wine.mean(axis=0)) / sd
    np.testing.assert_allclose(raw_z[np.argsort(raw_z[:, -1])],
                               std.means_[np.argsort(std.means_[:, -1])], atol=1e-3)


@pytest.mark.parametrize("kind", [*INIT_PARAMS[1:], "hierarchical"])
def test_every_start_is_unit_free(wine, kind):
    # Responsibilities from rescaled, shifted data with the same random stream are identical.
    scale = np.logspace(-3, 3, wine.shape[1])
    a = initialization.initial_responsibilities(wine, 4, kind, np.random.default_rng(1))
    b = initialization.initial_responsibilities(wine * scale + 7.0, 4, kind,
                                                np.random.default_rng(1))
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["kmeans", "k-means++", "random_from_data"])
def test_starting_parameters_map_with_the_units(wine, kind):
    # em.init_state on scaled data = scaled init_state (reg_covar=0: no unit-bound constant).
    scale = np.logspace(-2, 2, wine.shape[1])
    a = em.init_state(wine, 3, "full", reg_covar=0.0, init_params=kind,
                      rng=np.random.default_rng(2))
    b = em.init_state(wine * scale, 3, "full", reg_covar=0.0, init_params=kind,
                      rng=np.random.default_rng(2))
    np.testing.assert_allclose(b.weights, a.weights, rtol=1e-12)
    np.testing.assert_allclose(b.means, a.means * scale, rtol=1e-10)
    np.testing.assert_allclose(b.covariances, a.covariances * np.outer(scale, scale),
                               rtol=1e-8, atol=1e-12)


def test_spherical_starts_use_one_common_scale():
    X = np.random.default_rng(0).normal(size=(50, 3)) * [1.0, 10.0, 100.0]
    z = initialization.working_units(X, "spherical")
    np.testing.assert_allclose(z * np.sqrt(np.mean(X.var(axis=0))), X - X.mean(axis=0))


# --------------------------------------------------------------------------
# The default restart mix
# --------------------------------------------------------------------------


def test_auto_cycles_hierarchical_then_the_others():
    kinds = [initialization.restart_kind("auto", r) for r in range(7)]
    assert kinds == ["hierarchical", "kmeans", "k-means++", "random_from_data", "random",
                     "kmeans", "k-means++"]
    assert initialization.restart_kind("random", 3) == "random"


#: Best non-spurious log-likelihood of 100 k-means++ restarts (full covariance, seed 0),
#: pinned from benchmarks/results/restarts.json, written by
#: ``cd benchmarks && OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
#: python bench_restarts.py --repeat 3 --out results/restarts.json`` (2026-12-08, cfc21e0).
#: The default n_init=10 reached all 26 cells with a sound reference in all 3 seeds. At
#: seed 0 they take ~45 s on a quiet machine, so the test keeps every sound cell of the four
#: small data sets (the last four pins, iris K=5, faithful K=5, wine K=3 and diabetes K=3,
#: were missed by some seed before the split-and-merge moves from several screened maxima)
#: and the cheapest cell of each 1,797- and 2,000-row one (~15 s). Not covered: breast
#: cancer (no sound reference at any K, the reg_covar floor) and diabetes K=4 and 5 (none
#: of the 100 k-means++ runs is sound; docs/em.md).
BEST_OF_100 = [
    ("iris", 2, -214.3547045959753), ("iris", 3, -180.18547779600846),
    ("iris", 4, -157.76734583899952),
    ("faithful", 2, -1130.2639601940577), ("faithful", 3, -1114.439911056707),
    ("faithful", 4, -1106.0302892871773),
    ("wine", 2, -2978.696577462736), ("wine", 4, -2651.0319208064493),
    ("wine", 5, -2523.349203001856),
    ("diabetes", 2, -11622.282473114723),
    ("digits_pca10", 3, -60925.77479678141),
    ("china_pixels", 2, -27101.659241596884),
    ("flower_pixels", 3, -24519.51638996372),
    ("iris", 5, -141.86582990942034), ("faithful", 5, -1097.4185161687674),
    ("wine", 3, -2775.979279419037), ("diabetes", 3, -11329.266315887307),
]


def _benchmark_data(name, iris, faithful, wine):
    """The data of benchmarks/bench_restarts.py's load_data, as float arrays."""
    from sklearn import datasets as skd
    from sklearn.decomposition import PCA

    if name in ("china_pixels", "flower_pixels"):
        image = skd.load_sample_image(name.replace("_pixels", ".jpg"))
        image = image.reshape(-1, 3).astype(float)
        return image[np.random.default_rng(0).choice(len(image), 2000, replace=False)]
    return {
        "iris": lambda: iris.to_numpy(float),
        "faithful": lambda: faithful.to_numpy(float),
        "wine": lambda: wine,
        "diabetes": lambda: skd.load_diabetes(scaled=False).data,
        "digits_pca10": lambda: PCA(10, random_state=0).fit_transform(skd.load_digits().data),
    }[name]()


@pytest.mark.parametrize(("data", "k", "best"), BEST_OF_100)
def test_default_ten_restarts_reach_the_best_of_100(iris, faithful, wine, data, k, best):
    X = _benchmark_data(data, iris, faithful, wine)
    model = _fit(X, k, n_init=10, random_state=0)
    assert model._collapsed(model._point_state(), len(X)).size == 0  # the estimator's rule
    # 1e-6 relative: the benchmark's "reached"
    assert model.result_.log_likelihood >= best - 1e-6 * abs(best)


def test_one_run_is_the_hierarchical_start(faithful):
    # n_init=1 (the default) runs Ward's start alone; it is deterministic below the row cap.
    a = _fit(faithful, 3, random_state=0)
    b = _fit(faithful, 3, random_state=1)
    np.testing.assert_allclose(a.means_, b.means_)


def test_hierarchical_start_subsamples_large_data(monkeypatch, faithful):
    monkeypatch.setattr(initialization, "HIERARCHICAL_MAX_ROWS", 50)
    resp = initialization.initial_responsibilities(faithful.to_numpy(), 2, "hierarchical",
                                                   np.random.default_rng(0))
    assert resp.sum() == 50  # only the subsample carries weight into the first M-step
    model = _fit(faithful, 2, random_state=0)
    assert model.result_.log_likelihood == pytest.approx(-1130.264, abs=1e-3)


def test_explicit_init_params_do_not_screen(monkeypatch, iris):
    # scikit-learn's contract: an explicit init_params runs exactly n_init starts of that kind.
    calls = []
    original = em.run_em
    monkeypatch.setattr(em, "run_em", lambda *a, **kw: calls.append(1) or original(*a, **kw))
    _fit(iris, 3, n_init=4, init_params="kmeans", random_state=0)
    assert len(calls) == 4


# --------------------------------------------------------------------------
# Spurious runs
# --------------------------------------------------------------------------


def test_a_spurious_run_never_beats_a_sound_one():
    # Five identical rows: a component sitting on them has an unbounded likelihood
    # (bounded only by reg_covar). It must lose to any run without a collapsed component.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(60, 2)), rng.normal(6.0, 1.0, (60, 2)),
                   np.tile([[3.0, -3.0]], (5, 1))])
    resp = np.zeros((125, 3))
    resp[:60, 0] = resp[60:120, 1] = resp[120:, 2] = 1.0
    spurious, _ = em.run_em(X, em.m_step(X, resp, "full", 1e-6), reg_covar=1e-6, tol=1e-7,
                            max_iter=500)
    assert em.collapsed_components(spurious, 125, 1e-6).size  # the trap exists
    model = _fit(X, 3, n_init=10, random_state=0)
    assert em.collapsed_components(model._point_state(), 125, 1e-6).size == 0
    assert model.result_.log_likelihood < em.log_likelihood(X, spurious)


@pytest.mark.parametrize("kind", ["full", "tied", "diag", "spherical"])
def test_batched_screening_is_the_engines_em(wine, kind):
    # The stacked screening iterations are EM: same bound as em.run_em from the same start.
    rng = np.random.default_rng(3)
    resp = np.stack([initialization.initial_responsibilities(wine, 3, "k-means++", rng, kind)
                     for _ in range(5)])
    _, bound = initialization.batched_em(wine, resp, kind, 1e-6, 6)
    for start, value in zip(resp, bound, strict=True):
        state, _ = em.run_em(wine, em.m_step(wine, start, kind, 1e-6), reg_covar=1e-6,
                             tol=0.0, max_iter=5)
        assert value == pytest.approx(em.log_likelihood(wine, state) / len(wine), abs=1e-8)


def test_split_merge_starts_keep_the_responsibilities(iris):
    resp = initialization.initial_responsibilities(iris.to_numpy(), 4, "kmeans",
                                                   np.random.default_rng(0))
    moves = initialization.split_merge_starts(iris.to_numpy(), resp)
    assert moves.shape == (4 * 3 * 3 // 2, 150, 4)  # K (K - 1)^2 / 2 moves
    np.testing.assert_allclose(moves.sum(axis=2), 1.0)
    assert ((moves == 0) | (moves == 1)).all()  # hard starts stay hard
