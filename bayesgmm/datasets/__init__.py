"""Data shipped with bayesgmm, and a simulator with known parameters.

- :func:`load_faithful`: Old Faithful geyser eruptions (Azzalini and Bowman,
  1990; R's ``datasets::faithful``), 272 rows, ``eruptions`` and ``waiting``.
- :func:`load_iris`: Fisher's (1936) iris measurements, 150 rows, four
  features in cm and the ``species``.
- :func:`make_blobs_gmm`: samples from a Gaussian mixture with known weights,
  means and covariances.
"""

from __future__ import annotations

from importlib.resources import files
from typing import NamedTuple

import numpy as np
import pandas as pd

from bayesgmm._validation import validate_int, validate_positive
from bayesgmm.bayes.spec import simulate_mixture

__all__ = ["SimulatedMixture", "load_faithful", "load_iris", "make_blobs_gmm"]


def load_faithful() -> pd.DataFrame:
    """Old Faithful eruptions: duration (min) and waiting time to the next (min).

    Returns
    -------
    pandas.DataFrame
        272 rows, columns ``eruptions`` and ``waiting``.

    Examples
    --------
    >>> load_faithful().shape
    (272, 2)
    """
    path = files("bayesgmm.datasets").joinpath("faithful.csv")
    with path.open() as handle:
        frame = pd.read_csv(handle, index_col=0)
    frame.index = pd.RangeIndex(len(frame))
    return frame.astype(float)


def load_iris(*, return_species: bool = False) -> pd.DataFrame | tuple[pd.DataFrame, pd.Series]:
    """Fisher's iris data: four measurements in cm of 150 flowers.

    Parameters
    ----------
    return_species : bool, default=False
        Also return the species as a categorical Series.

    Returns
    -------
    X : pandas.DataFrame
        Columns ``sepal_length, sepal_width, petal_length, petal_width``.
    species : pandas.Series
        Only when ``return_species`` is true.

    Examples
    --------
    >>> load_iris().shape
    (150, 4)
    """
    path = files("bayesgmm.datasets").joinpath("iris.csv")
    with path.open() as handle:
        frame = pd.read_csv(handle)
    species = frame.pop("species").astype("category")
    if return_species:
        return frame, species
    return frame


class SimulatedMixture(NamedTuple):
    """Data drawn by :func:`make_blobs_gmm` with the parameters that made it."""

    X: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray


def make_blobs_gmm(
    n_samples: int = 500,
    n_components: int = 3,
    n_features: int = 2,
    *,
    separation: float = 6.0,
    weights: np.ndarray | None = None,
    random_state: int | None = None,
) -> SimulatedMixture:
    """Simulate a Gaussian mixture with known parameters.

    Means are random, rescaled so that the closest two are ``separation``
    apart (component standard deviations are between 0.5 and 1.5);
    covariances are random, well conditioned and correlated.

    Parameters
    ----------
    n_samples : int, default=500
        Number of rows.
    n_components : int, default=3
        Number of components.
    n_features : int, default=2
        Number of features.
    separation : float, default=6.0
        Distance between the two closest component means.
    weights : array-like of shape (n_components,), optional
        Mixing weights; random (Dirichlet(5)) by default.
    random_state : int, optional
        Seed.

    Returns
    -------
    SimulatedMixture
        ``X`` (n_samples, n_features), ``labels``, and the true ``weights``,
        ``means`` (K, D) and ``covariances`` (K, D, D).

    Examples
    --------
    >>> sim = make_blobs_gmm(100, 2, 3, random_state=0)
    >>> sim.X.shape, sim.covariances.shape
    ((100, 3), (2, 3, 3))
    """
    n_samples = validate_int(n_samples, "n_samples")
    k = validate_int(n_components, "n_components")
    d = validate_int(n_features, "n_features")
    separation = validate_positive(separation, "separation")
    rng = np.random.default_rng(random_state)
    if weights is None:
        weights = rng.dirichlet(np.full(k, 5.0))
    else:
        weights = np.asarray(weights, dtype=float)
        if weights.shape != (k,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1):
            raise ValueError(
                f"weights must be {k} non-negative numbers summing to 1, got {weights!r}."
            )
    means = rng.normal(size=(k, d))
    if k > 1:
        means *= separation / max(1e-12, _pairwise(means).min())
    covariances = np.empty((k, d, d))
    for j in range(k):
        a = rng.normal(size=(d, d))
        q, _ = np.linalg.qr(a)
        scales = rng.uniform(0.5, 1.5, size=d)
        covariances[j] = (q * scales**2) @ q.T
    X, labels = simulate_mixture(weights, means, covariances, n_samples, rng,
                                 return_labels=True)
    return SimulatedMixture(X, labels, weights, means, covariances)


def _pairwise(points: np.ndarray) -> np.ndarray:
    diff = points[:, None, :] - points[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    return dist[np.triu_indices(len(points), 1)]
