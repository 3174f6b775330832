"""Starting partitions for EM, computed in standardized working units.

A full-covariance Gaussian mixture is affine equivariant: rescaling a column
rescales the fitted parameters and shifts the log-likelihood by
``-N log(scale)``, nothing else. EM itself runs in centred, scaled units
(:mod:`bayesgmm.em`), so only the start could make a fit depend on the units
of the data, and it did: k-means in raw units is dominated by the columns
with the largest numbers (scikit-learn's wine data in raw units: log-likelihood
-2915.75 at K=3 after 10 restarts, -2797.88 from the same restarts on
z-scores). Every start here is therefore computed on the z-scores of the data
(per column for full, tied and diagonal covariances; one common scale for
spherical ones, whose model is only invariant under a common scale), and
returned as responsibilities, which carry no units.

The two seed starts differ from scikit-learn's, where only the seed rows get
responsibility: the first M-step then gives each component the covariance
``reg_covar * I`` in data units, so the first E-step assigns rows by Euclidean
distance in raw units and the fit depends on them again. Here every row goes
to its nearest seed in working units, which is what that first E-step does,
without the units.

Starts:

``"kmeans"``
    Lloyd's k-means from a k-means++ seeding (scikit-learn's default).
``"k-means++"``
    One seed row per component picked by k-means++, every row assigned to
    its nearest seed.
``"random"``
    Uniform random responsibilities.
``"random_from_data"``
    One random seed row per component, every row assigned to its nearest
    seed.
``"hierarchical"``
    Ward's agglomerative clustering (:func:`scipy.cluster.hierarchy.linkage`),
    the start mclust uses in model-based form; on at most
    :data:`HIERARCHICAL_MAX_ROWS` rows drawn at random, the other rows get no
    weight in the first M-step.

``init_params="auto"`` uses all five: the first run starts hierarchical, the
candidate starts screened for the others cycle through :data:`AUTO_CYCLE`
(see :class:`bayesgmm.EMGMM`).
"""

from __future__ import annotations

import numpy as np
from scipy.cluster import hierarchy

__all__ = [
    "AUTO_CYCLE",
    "HIERARCHICAL_MAX_ROWS",
    "INIT_PARAMS",
    "initial_responsibilities",
    "kmeans",
    "kmeans_plusplus",
    "restart_kind",
    "working_units",
]

#: Values of ``init_params``.
INIT_PARAMS = ("auto", "kmeans", "k-means++", "random", "random_from_data")
#: Kinds of the candidate starts of ``init_params="auto"`` (run 0 is hierarchical), in turn.
AUTO_CYCLE = ("kmeans", "k-means++", "random_from_data", "random")
#: Ward's method costs O(N^2) memory: larger data are subsampled to this many rows.
HIERARCHICAL_MAX_ROWS = 2000


def restart_kind(init_params: str, restart: int) -> str:
    """The start used by restart number ``restart`` (0-based) for ``init_params``.

    Parameters
    ----------
    init_params : {"auto", "kmeans", "k-means++", "random", "random_from_data"}
        The estimator's setting.
    restart : int
        0 for the first run.

    Returns
    -------
    str
        ``init_params`` itself, or for ``"auto"``: ``"hierarchical"`` at
        restart 0, then ``AUTO_CYCLE`` in turn.

    Examples
    --------
    >>> [restart_kind("auto", r) for r in range(6)]
    ['hierarchical', 'kmeans', 'k-means++', 'random_from_data', 'random', 'kmeans']
    """
    if init_params != "auto":
        return init_params
    if restart == 0:
        return "hierarchical"
    return AUTO_CYCLE[(restart - 1) % len(AUTO_CYCLE)]


def working_units(X: np.ndarray, covariance_type: str = "full") -> np.ndarray:
    """Z-scores of ``X``: centred, each column divided by its standard deviation.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        For ``"spherical"`` every column is divided by the same scale (the
        root mean variance), the only rescaling that model is invariant under.

    Returns
    -------
    ndarray of shape (n_samples, n_features)

    Examples
    --------
    >>> import numpy as np
    >>> working_units(np.array([[0.0, 10.0], [2.0, 30.0]])).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """
    sd = X.std(axis=0)
    if covariance_type == "spherical":
        sd = np.full_like(sd, np.sqrt(np.mean(sd**2)))
    sd[~(sd > 0)] = 1.0
    return (X - X.mean(axis=0)) / sd


def kmeans_plusplus(X: np.ndarray, n_clusters: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n_clusters`` seed rows chosen by greedy k-means++.

    Each new seed is the best (lowest total squared distance) of
    ``2 + log(n_clusters)`` candidates drawn with probability proportional to
    the squared distance to the nearest seed, as in scikit-learn's
    ``kmeans_plusplus``; this copy keeps the EM layer free of scikit-learn.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in the units the distances should be taken in.
    n_clusters : int
        Number of seeds.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    ndarray of int of shape (n_clusters,)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [9.0], [9.1]])
    >>> sorted((X[kmeans_plusplus(X, 2, np.random.default_rng(0)), 0] > 5).tolist())
    [False, True]
    """
    n = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    sq_norms = np.einsum("nd,nd->n", X, X)
    centers = [int(rng.integers(n))]
    closest = np.maximum(sq_norms - 2 * X @ X[centers[0]] + sq_norms[centers[0]], 0.0)
    for _ in range(1, n_clusters):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than clusters
            candidates = rng.choice(n, size=1)
        else:
            cum = np.cumsum(closest)
            candidates = np.searchsorted(cum, rng.random(n_trials) * total)
            candidates = np.minimum(candidates, n - 1)
        dist = np.maximum(
            sq_norms[None] - 2 * X[candidates] @ X.T + sq_norms[candidates][:, None], 0.0
        )
        dist = np.minimum(closest[None], dist)
        best = int(np.argmin(dist.sum(axis=1)))
        centers.append(int(candidates[best]))
        closest = dist[best]
    return np.asarray(centers)


def kmeans(
    X: np.ndarray, n_clusters: int, rng: np.random.Generator, *, max_iter: int = 100
) -> np.ndarray:
    """Lloyd's k-means from a k-means++ seeding; one label per row.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in the units the distances should be taken in.
    n_clusters : int
        Number of clusters.
    rng : numpy.random.Generator
        Random source for the seeding.
    max_iter : int, default=100
        Maximum Lloyd iterations.

    Returns
    -------
    ndarray of int of shape (n_samples,)

    Examples
    --------
    >>> import numpy as np
    >>> labels = kmeans(np.array([[0.0], [0.1], [9.0], [9.1]]), 2, np.random.default_rng(0))
    >>> bool(labels[0] == labels[1] != labels[2] == labels[3])
    True
    """
    centers = X[kmeans_plusplus(X, n_clusters, rng)].copy()
    labels = None
    sq_norms = np.einsum("nd,nd->n", X, X)
    for _ in range(max_iter):
        dist = sq_norms[:, None] - 2 * X @ centers.T + np.einsum("kd,kd->k", centers, centers)
        new_labels = np.argmin(dist, axis=1)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        counts = np.bincount(labels, minlength=n_clusters)
        sums = np.zeros_like(centers)
        np.add.at(sums, labels, X)
        filled = counts > 0
        centers[filled] = sums[filled] / counts[filled, None]
    return labels


def _nearest(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (Euclidean) for every row."""
    dist = (np.einsum("nd,nd->n", Z, Z)[:, None] - 2 * Z @ centers.T
            + np.einsum("kd,kd->k", centers, centers))
    return np.argmin(dist, axis=1)


def _ward(Z: np.ndarray, n_clusters: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Rows used and their Ward cluster labels (subsampled above the row cap)."""
    n = Z.shape[0]
    rows = np.arange(n)
    if n > HIERARCHICAL_MAX_ROWS:
        rows = np.sort(rng.choice(n, size=HIERARCHICAL_MAX_ROWS, replace=False))
    tree = hierarchy.linkage(Z[rows], method="ward")
    labels = hierarchy.cut_tree(tree, n_clusters=n_clusters)[:, 0]
    return rows, labels


def initial_responsibilities(
    X: np.ndarray,
    n_components: int,
    kind: str,
    rng: np.random.Generator,
    covariance_type: str = "full",
) -> np.ndarray:
    """Starting responsibilities for EM, computed on the z-scores of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in any units: the result does not depend on them (up to the
        rounding of the z-scores).
    n_components : int
        Number of components.
    kind : {"kmeans", "k-means++", "random", "random_from_data", "hierarchical"}
        Start (see the module docstring).
    rng : numpy.random.Generator
        Random source.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Selects the standardization (see :func:`working_units`).

    Returns
    -------
    ndarray of shape (n_samples, n_components)
        Non-negative; rows sum to one or, for rows a start leaves out, zero.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [5.0], [5.2]])
    >>> resp = initial_responsibilities(X, 2, "hierarchical", np.random.default_rng(0))
    >>> resp.argmax(axis=1).tolist()
    [0, 0, 1, 1]
    """
    n = X.shape[0]
    resp = np.zeros((n, n_components))
    if kind == "random":
        resp = rng.uniform(size=(n, n_components))
        resp /= resp.sum(axis=1, keepdims=True)
        return resp
    Z = working_units(X, covariance_type)
    if kind == "kmeans":
        resp[np.arange(n), kmeans(Z, n_components, rng)] = 1.0
    elif kind in ("k-means++", "random_from_data"):
        if kind == "k-means++":
            seeds = kmeans_plusplus(Z, n_components, rng)
        else:
            seeds = rng.choice(n, size=n_components, replace=False)
        resp[np.arange(n), _nearest(Z, Z[seeds])] = 1.0
        resp[seeds, :] = 0.0  # each seed in its own cell, even among duplicate rows
        resp[seeds, np.arange(n_components)] = 1.0
    elif kind == "hierarchical":
        rows, labels = _ward(Z, n_components, rng)
        resp[rows, labels] = 1.0
    else:
        raise ValueError(
            f"kind must be one of {(*INIT_PARAMS[1:], 'hierarchical')}, got {kind!r}."
        )
    return resp
