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
    "working_scale",
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


def working_scale(sd: np.ndarray, covariance_type: str = "full") -> np.ndarray:
    """The divisor of each column in working units, from the columns' sds.

    The sds themselves, but one common scale (the root mean variance) for
    ``"spherical"``, the only rescaling that model is invariant under, and 1
    for a column with no spread. EM's working units (``bayesgmm.em._Frame``)
    and every start here use this rule.

    Examples
    --------
    >>> import numpy as np
    >>> working_scale(np.array([3.0, 4.0, 0.0]), "spherical").round(4).tolist()
    [2.8868, 2.8868, 2.8868]
    """
    sd = np.asarray(sd, dtype=float)
    if covariance_type == "spherical":
        sd = np.full_like(sd, np.sqrt(np.mean(sd**2)))
    return np.where(sd > 0, sd, 1.0)


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
    return (X - X.mean(axis=0)) / working_scale(X.std(axis=0), covariance_type)


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


#: Working memory of :func:`batched_em`, in float64 elements per block of candidates.
BATCH_ELEMENTS = 2_000_000


def batched_em(
    X: np.ndarray,
    resp: np.ndarray,
    covariance_type: str,
    reg_covar: float,
    n_iter: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Take many EM starts a few iterations at once, for screening them.

    Every start is one set of responsibilities; all of them iterate together
    as stacked NumPy arrays, on the z-scores of ``X`` (:func:`working_units`),
    with ``reg_covar`` mapped into those units. On small data one iteration
    of a block of starts costs about what one iteration of a single start
    costs in :func:`bayesgmm.em.run_em`, whose cost there is mostly fixed
    overhead, so hundreds of starts can be screened for the price of a few
    runs. The arithmetic is the one of EM (M-step, then E-step), without the
    engine's chunking and threads: use it to rank starts, and
    :func:`bayesgmm.em.run_em` for the fit.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in any units.
    resp : ndarray of shape (n_starts, n_samples, n_components)
        Starting responsibilities (rows may be all zero: left out of the
        first M-step).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance parametrisation.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance, in
        data units.
    n_iter : int
        EM iterations (M-step then E-step) to run.

    Returns
    -------
    resp : ndarray of shape (n_starts, n_samples, n_components)
        Responsibilities after the last E-step.
    bound : ndarray of shape (n_starts,)
        Mean log-likelihood per sample at those parameters, in the units of
        ``X``; ``-inf`` for a start whose covariance broke down.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.3]])
    >>> r = np.stack([initial_responsibilities(X, 2, "k-means++", np.random.default_rng(s))
    ...               for s in range(3)])
    >>> resp, bound = batched_em(X, r, "full", 1e-6, 5)
    >>> resp.shape, bool(np.allclose(bound, bound[0]))
    ((3, 6, 2), True)
    """
    Z = working_units(X, covariance_type)
    scale = working_scale(X.std(axis=0), covariance_type)
    reg = reg_covar / scale**2
    n_starts, n, k = resp.shape
    d = Z.shape[1]
    block = max(1, int(BATCH_ELEMENTS // max(1, n * k * (d + 1))))
    out = np.empty_like(resp)
    bound = np.empty(n_starts)
    for lo in range(0, n_starts, block):
        out[lo:lo + block], bound[lo:lo + block] = _em_block(
            Z, resp[lo:lo + block], covariance_type, reg, n_iter)
    return out, bound - np.log(scale).sum()


def _em_block(Z: np.ndarray, resp: np.ndarray, kind: str, reg: np.ndarray,
              n_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`batched_em` on one block of starts, in working units."""
    s = resp.shape[0]
    d = Z.shape[1]
    alive = np.ones(s, dtype=bool)
    total = np.full(s, -np.inf)
    sq = Z * Z
    for _ in range(n_iter):
        nk = resp.sum(axis=1) + 10 * np.finfo(float).eps  # (s, k)
        rt = resp.transpose(0, 2, 1)  # (s, k, n)
        means = rt @ Z / nk[..., None]  # (s, k, d)
        if kind in ("full", "tied"):
            second = (rt[..., None] * Z).transpose(0, 1, 3, 2) @ Z  # (s, k, d, d)
            cov = second - nk[..., None, None] * means[..., :, None] * means[..., None, :]
            if kind == "tied":
                cov = np.broadcast_to(cov.sum(axis=1, keepdims=True)
                                      / nk.sum(axis=1)[:, None, None, None], cov.shape)
            else:
                cov = cov / nk[..., None, None]
            cov = cov + np.diag(reg)
            chol, alive = _batched_cholesky(cov, alive)
            # precision factor U = inv(L)^T, so (z - mu) U has the Mahalanobis norm
            prec = np.linalg.inv(chol).transpose(0, 1, 3, 2)
            y = Z @ prec - (means[:, :, None, :] @ prec)  # (s, k, n, d)
            maha = np.einsum("skne,skne->skn", y, y)
            log_det = np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
        else:
            var = (rt @ sq) / nk[..., None] - means**2 + reg  # (s, k, d)
            if kind == "spherical":
                var = np.repeat(var.mean(axis=2, keepdims=True), d, axis=2)
            bad = ~(var > 0).all(axis=(1, 2))
            alive &= ~bad
            var[bad] = 1.0
            prec = 1.0 / var
            maha = (np.einsum("nd,skd->skn", sq, prec)
                    - 2 * np.einsum("nd,skd->skn", Z, means * prec)
                    + (means**2 * prec).sum(axis=2)[..., None])
            log_det = 0.5 * np.log(var).sum(axis=2)
        weights = nk / nk.sum(axis=1, keepdims=True)
        log_prob = (np.log(weights) - log_det)[..., None] - 0.5 * (d * np.log(2 * np.pi) + maha)
        top = log_prob.max(axis=1, keepdims=True)
        shifted = np.exp(log_prob - top)
        norm = shifted.sum(axis=1, keepdims=True)
        resp = (shifted / norm).transpose(0, 2, 1)
        total = (np.log(norm) + top)[:, 0, :].mean(axis=1)
    total[~alive] = -np.inf
    return resp, total


def _batched_cholesky(cov: np.ndarray, alive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cholesky factors of a (s, k, d, d) stack; starts that fail get the identity."""
    try:
        return np.linalg.cholesky(cov), alive
    except np.linalg.LinAlgError:
        pass
    alive = alive.copy()
    chol = np.empty_like(cov)
    eye = np.eye(cov.shape[-1])
    for j in range(cov.shape[0]):
        try:
            chol[j] = np.linalg.cholesky(cov[j])
        except np.linalg.LinAlgError:
            alive[j] = False
            chol[j] = eye
    return chol, alive


def split_merge_starts(X: np.ndarray, resp: np.ndarray,
                       covariance_type: str = "full") -> np.ndarray:
    """Starts one split-and-merge move away from a solution (Ueda et al. 2000).

    For every pair of components ``(i, j)``, merge them (add their
    responsibilities), then split one component of the merged solution in
    two along its principal axis in working units (each row's
    responsibility goes to the side of the component's mean it lies on).
    EM from these starts leaves a local maximum that no restart near it
    escapes: one component too many in one place, one too few in another.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in any units.
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities of the solution.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Selects the standardization (see :func:`working_units`).

    Returns
    -------
    ndarray of shape (n_moves, n_samples, n_components)
        ``n_moves = K (K - 1)^2 / 2``: every merged pair, then every split.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [5.0], [5.1], [9.0], [9.2]])
    >>> resp = np.repeat(np.eye(2), [4, 2], axis=0)  # {0, 0.1, 5, 5.1} and {9, 9.2}: merged,
    >>> # then split at the mean 4.7
    >>> moves = split_merge_starts(X, resp)
    >>> moves.shape
    (1, 6, 2)
    >>> moves[0].argmax(axis=1).tolist()
    [1, 1, 0, 0, 0, 0]
    """
    Z = working_units(X, covariance_type)
    k = resp.shape[1]
    moves = []
    for i in range(k):
        for j in range(i + 1, k):
            merged = np.delete(resp, j, axis=1)
            merged[:, i] += resp[:, j]
            for split in range(k - 1):
                w = merged[:, split]
                if not w.sum() > 0:
                    continue
                mean = w @ Z / w.sum()
                centred = Z - mean
                cov = (centred.T * w) @ centred / w.sum()
                side = centred @ np.linalg.eigh(cov)[1][:, -1] > 0
                kept = np.delete(merged, split, axis=1)
                moves.append(np.column_stack([kept, w * side, w * ~side]))
    return np.asarray(moves).reshape(-1, *resp.shape)
