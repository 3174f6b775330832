r"""Model-based agglomerative hierarchical clustering: mclust's default start (NumPy only).

Banfield and Raftery (1993) and Fraley (1998) grow a tree by merging, at
each step, the two clusters whose union raises a classification likelihood
criterion least. For a partition into clusters of sizes :math:`n_k` with
scatter matrices :math:`W_k` about their means the criteria are

- ``"VVV"`` (unconstrained ellipsoids, mclust's default):
  :math:`\sum_k n_k \log\left|(W_k + \lambda I)/n_k\right|`. The term
  :math:`\lambda I` keeps the criterion finite for clusters with fewer than
  :math:`D + 1` points (a singleton has :math:`W_k = 0`); its weight fades as a
  cluster grows, so large clusters are compared by their own covariance. Two
  singletons merge in the order of their distance, and small clusters grow
  along their own principal directions, which Ward's criterion cannot do.
- ``"EII"`` (equal spheres): :math:`\operatorname{tr} \sum_k W_k`, Ward's
  criterion; the merge cost is
  :math:`\frac{n_i n_j}{n_i + n_j} \lVert \bar x_i - \bar x_j \rVert^2`
  (:func:`scipy.cluster.hierarchy.ward`).

The merge of clusters :math:`i, j` has scatter
:math:`W_i + W_j + \frac{n_i n_j}{n_i + n_j}(\bar x_i - \bar x_j)(\bar x_i - \bar x_j)^\top`,
so each step costs one batch of :math:`D \times D` determinants against the
clusters left; every cluster keeps its cheapest partner, so the whole tree
costs :math:`O(N^2 D^3)` time and :math:`O(N^2)` memory (a cost matrix). Data
with more than :data:`MAX_ROWS` rows are clustered on a random subsample of
that size; the other rows are left out of the start.

As in mclust, the tree is grown on standardized data (centred, each column
divided by its standard deviation) and cut at the wanted number of clusters.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
from scipy.cluster.hierarchy import ward

from bayesgmm._validation import validate_choice, validate_int, validate_positive
from bayesgmm.initialization import working_units

__all__ = ["HC_MODELS", "MAX_ROWS", "agglomerate", "cut", "partition"]

#: Criteria of :func:`agglomerate`.
HC_MODELS = ("VVV", "EII")
#: Above this many rows the tree is grown on a random subsample of this size.
MAX_ROWS = 2000
#: ``lambda`` of the VVV criterion, as a share of the mean variance of the standardized
#: data (which is 1).
VVV_RIDGE = 0.1

_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_CACHE_SIZE = 8


def agglomerate(X: np.ndarray, model: str = "VVV", *, ridge: float = VVV_RIDGE) -> np.ndarray:
    """The merges of model-based agglomerative clustering of the rows of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, already in the units the criterion should see (see
        :func:`partition`, which standardizes). At most a few thousand rows:
        the cost matrix takes ``8 n_samples^2`` bytes.
    model : {"VVV", "EII"}, default="VVV"
        Merge criterion (module docstring).
    ridge : float, default=0.1
        ``lambda`` of the VVV criterion.

    Returns
    -------
    ndarray of shape (n_samples - 1, 2)
        Row ``s`` holds the two clusters merged at step ``s``, each named by
        the smallest row index it holds; the merged cluster keeps the first
        name.

    Examples
    --------
    >>> X = np.array([[0.0], [0.1], [5.0], [5.3]])
    >>> agglomerate(X).tolist()
    [[0, 1], [2, 3], [0, 2]]
    """
    model = validate_choice(model, "model", HC_MODELS)
    ridge = validate_positive(ridge, "ridge")
    X = np.ascontiguousarray(X, dtype=float)
    key = (model, ridge, X.shape, hashlib.sha1(X.tobytes()).hexdigest())
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key].copy()
    merges = _ward_merges(X) if model == "EII" else _vvv_merges(X, ridge)
    _CACHE[key] = merges
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return merges.copy()


def _ward_merges(X: np.ndarray) -> np.ndarray:
    """Ward's tree (scipy) as merges of clusters named by their smallest row."""
    n = X.shape[0]
    if n < 2:
        return np.empty((0, 2), dtype=int)
    tree = ward(X)
    name = list(range(n))  # scipy's cluster n + s is the merge of step s
    merges = np.empty((n - 1, 2), dtype=int)
    for s, (a, b) in enumerate(tree[:, :2].astype(int)):
        i, j = sorted((name[a], name[b]))
        merges[s] = i, j
        name.append(i)
    return merges


def _vvv_merges(X: np.ndarray, ridge: float) -> np.ndarray:
    n, d = X.shape
    merges = np.empty((max(n - 1, 0), 2), dtype=int)
    if n < 2:
        return merges
    count = np.ones(n)
    mean = X.copy()
    scatter = np.zeros((n, d, d))
    eye = ridge * np.eye(d)
    # criterion of each cluster: n log|(W + ridge I)/n|; a singleton's is d log(ridge)
    crit = np.full(n, d * np.log(ridge))
    sq = np.einsum("nd,nd->n", X, X)
    dist = np.maximum(sq[:, None] + sq[None, :] - 2.0 * X @ X.T, 0.0)
    # two singletons: W = dd'/2 is rank one, |W + ridge I| = ridge^(d-1) (ridge + |d|^2 / 2)
    cost = 2.0 * ((d - 1) * np.log(ridge) + np.log(ridge + 0.5 * dist) - d * np.log(2.0))
    cost -= 2.0 * d * np.log(ridge)
    np.fill_diagonal(cost, np.inf)
    active = np.ones(n, dtype=bool)
    partner = cost.argmin(axis=1)
    best = cost[np.arange(n), partner]
    for step in range(n - 1):
        i = int(np.argmin(best))
        j = int(partner[i])
        i, j = min(i, j), max(i, j)
        merges[step] = i, j
        diff = mean[j] - mean[i]
        total = count[i] + count[j]
        scatter[i] += scatter[j] + (count[i] * count[j] / total) * np.outer(diff, diff)
        mean[i] += diff * (count[j] / total)
        count[i] = total
        crit[i] = total * np.linalg.slogdet((scatter[i] + eye) / total)[1]
        active[j] = False
        cost[j, :] = np.inf
        cost[:, j] = np.inf
        best[j] = np.inf
        others = np.flatnonzero(active)
        others = others[others != i]
        cost[i, :] = np.inf
        if others.size:
            diffs = mean[others] - mean[i]
            sizes = count[others] + count[i]
            factor = count[others] * count[i] / sizes
            merged = (scatter[others] + scatter[i] + eye
                      + factor[:, None, None] * diffs[:, :, None] * diffs[:, None, :])
            logdet = np.linalg.slogdet(merged / sizes[:, None, None])[1]
            cost[i, others] = sizes * logdet - crit[i] - crit[others]
        cost[:, i] = cost[i, :]
        # each active cluster's cheapest partner: recompute where it was i or j
        stale = others[(partner[others] == i) | (partner[others] == j)]
        for r in stale:
            partner[r] = int(np.argmin(cost[r]))
            best[r] = cost[r, partner[r]]
        fresh = others[cost[others, i] < best[others]]
        partner[fresh] = i
        best[fresh] = cost[fresh, i]
        if others.size:
            partner[i] = int(np.argmin(cost[i]))
            best[i] = cost[i, partner[i]]
        else:
            best[i] = np.inf
    return merges


def cut(merges: np.ndarray, n_samples: int, n_clusters: int) -> np.ndarray:
    """Labels ``0..n_clusters - 1`` of the rows after the first ``n_samples - n_clusters`` merges.

    Clusters are numbered in the order of their first row.

    Examples
    --------
    >>> cut(np.array([[0, 1], [2, 3], [0, 2]]), 4, 2).tolist()
    [0, 0, 1, 1]
    """
    n_clusters = validate_int(n_clusters, "n_clusters")
    if n_clusters > n_samples:
        raise ValueError(
            f"n_clusters must be at most the number of rows {n_samples}, got {n_clusters}."
        )
    parent = np.arange(n_samples)
    for i, j in merges[: n_samples - n_clusters]:
        parent[j] = i
    root = parent.copy()
    while True:  # every row to the root of its cluster
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    _, first, inverse = np.unique(root, return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


def partition(X: np.ndarray, n_clusters: int, model: str = "VVV", *,
              rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rows and their cluster labels from model-based hierarchical clustering.

    The tree is grown on the standardized data (on a random subsample of
    :data:`MAX_ROWS` rows when there are more) and cut at ``n_clusters``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in any units.
    n_clusters : int
        Number of clusters.
    model : {"VVV", "EII"}, default="VVV"
        Merge criterion.
    rng : numpy.random.Generator, optional
        Draws the subsample of large data.

    Returns
    -------
    rows : ndarray of int
        The rows clustered (all of them up to :data:`MAX_ROWS`).
    labels : ndarray of int, same length
        Their clusters, ``0 .. n_clusters - 1``.

    Examples
    --------
    >>> X = np.array([[0.0, 1.0], [0.2, 1.1], [5.0, 0.0], [5.1, 0.3], [4.9, -0.1]])
    >>> partition(X, 2)[1].tolist()
    [0, 0, 1, 1, 1]
    """
    X = np.asarray(X, dtype=float)
    n = X.shape[0]
    rows = np.arange(n)
    if n > MAX_ROWS:
        rng = np.random.default_rng() if rng is None else rng
        rows = np.sort(rng.choice(n, MAX_ROWS, replace=False))
    Z = working_units(X[rows])
    merges = agglomerate(Z, model)
    return rows, cut(merges, rows.size, n_clusters)
