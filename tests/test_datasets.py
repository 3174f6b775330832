"""Shipped data sets and the simulator."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesgmm as bg

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "faithful.csv"


def test_faithful_matches_r_datasets(faithful):
    assert faithful.shape == (272, 2)
    assert list(faithful.columns) == ["eruptions", "waiting"]
    # R: mean(faithful$eruptions) = 3.487783, mean(faithful$waiting) = 70.89706
    assert faithful["eruptions"].mean() == pytest.approx(3.487783, abs=1e-6)
    assert faithful["waiting"].mean() == pytest.approx(70.89706, abs=1e-5)
    if SHARED.exists():
        shared = pd.read_csv(SHARED, index_col=0)
        np.testing.assert_array_equal(shared.values, faithful.values)


def test_iris_matches_fisher(iris):
    X, species = bg.datasets.load_iris(return_species=True)
    assert X.shape == (150, 4)
    assert species.value_counts().tolist() == [50, 50, 50]
    # R: colMeans(iris[1:4]) = 5.843333 3.057333 3.758000 1.199333
    np.testing.assert_allclose(X.mean().values, [5.843333, 3.057333, 3.758, 1.199333],
                               atol=1e-6)


def test_simulator_is_reproducible_and_separated():
    a = bg.datasets.make_blobs_gmm(400, 3, 2, separation=8.0, random_state=3)
    b = bg.datasets.make_blobs_gmm(400, 3, 2, separation=8.0, random_state=3)
    np.testing.assert_array_equal(a.X, b.X)
    dist = np.linalg.norm(a.means[:, None] - a.means[None], axis=-1)
    assert dist[np.triu_indices(3, 1)].min() == pytest.approx(8.0)
    assert np.all(np.linalg.eigvalsh(a.covariances) > 0)
    # empirical label frequencies near the weights (4 binomial se at n=400)
    np.testing.assert_allclose(np.bincount(a.labels, minlength=3) / 400, a.weights, atol=0.1)


def test_simulator_rejects_bad_weights():
    with pytest.raises(ValueError, match="weights must be 2 non-negative numbers"):
        bg.datasets.make_blobs_gmm(10, 2, weights=[0.5, 0.6])
