"""The stacked restart screening: each stacked piece against its one-at-a-time reference."""

import warnings

import numpy as np
import pytest
from scipy.cluster import hierarchy
from sklearn.cluster import KMeans
from sklearn.datasets import load_wine

import bayesgmm as bg
from bayesgmm import em, initialization
from bayesgmm.exceptions import ConvergenceWarning


@pytest.fixture(scope="module")
def wine():
    return load_wine().data


@pytest.mark.parametrize("kind", ["full", "tied", "diag"])
def test_batched_sound_is_the_per_start_rule(wine, kind):
    # One pooled em.collapsed_from_full call must flag exactly the starts that
    # em.collapsed_components flags one M-step at a time. K=6 on 178 x 13 rows after 5
    # iterations: about half the full-covariance starts have a collapsed component, so
    # both answers occur.
    rounding = em.rounding_variance(wine)
    pool = initialization.candidate_starts(wine, 6, 40, np.random.default_rng(0), kind)
    resp, _ = initialization.batched_em(wine, pool, kind, 1e-6, 5)
    fast = initialization.batched_sound(wine, resp, kind, 1e-6, rounding)
    slow = np.array([
        em.collapsed_components(em.m_step(wine, r, kind, 1e-6), len(wine), 1e-6,
                                rounding=rounding).size == 0
        for r in resp
    ])
    np.testing.assert_array_equal(fast, slow)
    if kind == "full":
        assert 0 < slow.sum() < len(slow)  # the test can fail both ways


def test_stacked_kmeans_is_lloyd(wine):
    # Each set: Lloyd's algorithm from its own k-means++ seeds (scikit-learn's KMeans
    # with those centres and one init converges to the same partition).
    Z = initialization.working_units(wine)
    seeds = initialization.stacked_kmeans_plusplus(Z, 4, 5, np.random.default_rng(3))
    labels = initialization.stacked_kmeans(Z, 4, 5, np.random.default_rng(3))
    for seed_rows, got in zip(seeds, labels, strict=True):
        ref = KMeans(4, init=Z[seed_rows], n_init=1, algorithm="lloyd", tol=0.0,
                     max_iter=100).fit(Z).labels_
        np.testing.assert_array_equal(got, ref)


def test_stacked_kmeans_plusplus_sets_are_valid_seedings(wine):
    # Every set: distinct rows, its first a uniformly drawn row, sets drawn independently.
    Z = initialization.working_units(wine)
    seeds = initialization.stacked_kmeans_plusplus(Z, 5, 4, np.random.default_rng(7))
    assert seeds.shape == (4, 5)
    assert all(len(set(row)) == 5 for row in seeds.tolist())
    np.testing.assert_array_equal(seeds[:, 0], np.random.default_rng(7).integers(len(Z),
                                                                                 size=4))
    assert len({tuple(row) for row in seeds.tolist()}) > 1


def test_candidate_starts_drop_repeated_partitions():
    # Two well separated groups: every k-means start ends in the same partition, with
    # its labels in either order; one is kept. Random responsibilities are all kept.
    X = np.array([[0.0], [0.1], [0.2], [9.0], [9.1], [9.2]])
    rng = np.random.default_rng(0)
    hard = initialization.candidate_starts(X, 2, 12, rng, kinds=("kmeans",))
    assert hard.shape == (1, 6, 2)
    soft = initialization.candidate_starts(X, 2, 12, rng, kinds=("kmeans", "random"))
    assert soft.shape == (7, 6, 2)  # 6 random + 1 k-means
    np.testing.assert_allclose(soft.sum(axis=2), 1.0)


def test_ward_cut_is_cut_tree():
    X = np.random.default_rng(1).normal(size=(300, 3))  # continuous: no tied merge heights
    tree = hierarchy.linkage(X, method="ward")
    for k in range(1, 8):
        np.testing.assert_array_equal(initialization._cut(tree, k),
                                      hierarchy.cut_tree(tree, n_clusters=k)[:, 0])


def test_batched_em_is_exact_for_tight_components(monkeypatch):
    # A component 1e-6 wide, 3 sd from the data's mean: in working units |mu|^2 / v ~ 1e13.
    # Two things keep the stacked EM equal to the engine (which centres everything):
    # its log-densities go through the Cholesky factor (max|z|^2 trace(P) ~ 1e14 >
    # EXPANSION_BOUND), with the constant computed afresh (adding back mu'P mu / 2 ~ 1e12
    # cost ~1e-5 per row), and its scatter is recomputed about its mean (|mu|^2 / v >
    # CENTRING_RATIO; raw moments lose ~eps |mu|^2 / v ~ 1e-3 of v). Measured: 2.5e-11 per
    # row with both, 6.5e-5 without the factor, 2.1e-6 without the centring; 1e-9 is the
    # engine's own agreement with a naive scipy EM on these data (1e-11) with room.
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(80, 2)), 3.0 + 1e-6 * rng.normal(size=(20, 2))])
    resp = np.zeros((1, 100, 2))
    resp[0, :80, 0] = resp[0, 80:, 1] = 1.0
    state, _ = em.run_em(X, em.m_step(X, resp[0], "full", 0.0), reg_covar=0.0, tol=0.0,
                         max_iter=3)
    reference = em.log_likelihood(X, state) / 100
    _, bound = initialization.batched_em(X, resp, "full", 0.0, 4)
    assert abs(bound[0] - reference) < 1e-9
    with monkeypatch.context() as mp:
        mp.setattr(initialization, "EXPANSION_BOUND", np.inf)
        _, expanded = initialization.batched_em(X, resp, "full", 0.0, 4)
    assert abs(expanded[0] - reference) > 1e-6
    monkeypatch.setattr(initialization, "CENTRING_RATIO", np.inf)
    _, raw = initialization.batched_em(X, resp, "full", 0.0, 4)
    assert abs(raw[0] - reference) > 1e-7


def test_screened_default_is_cheap_and_reaches_faithful(faithful):
    # The EM reference of every BayesGMM fit: EMGMM(2, n_init=10) on Old Faithful. It
    # must reach the K=2 maximum (-1130.264, pinned in test_em_restarts) and spend at
    # most a few dozen stacked-EM calls, not one M-step per candidate.
    calls = []
    original = initialization.batched_em
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mp.setattr("bayesgmm.estimators.batched_em",
                   lambda *a, **kw: calls.append(1) or original(*a, **kw))
        mp.setattr(em, "m_step", _counting(em.m_step, calls_m := []))
        model = bg.EMGMM(2, n_init=10, random_state=0).fit(faithful)
    assert model.result_.log_likelihood == pytest.approx(-1130.264, abs=1e-3)
    assert len(calls) <= 12  # two stages per screened pool, a few pools
    assert len(calls_m) <= 40  # was > 600 (one per candidate and stage)


def _counting(function, calls):
    def wrapper(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)

    return wrapper
