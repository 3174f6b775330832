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

import functools

import numpy as np
from scipy.cluster import hierarchy

__all__ = [
    "AUTO_CYCLE",
    "HIERARCHICAL_MAX_ROWS",
    "INIT_PARAMS",
    "batched_em",
    "batched_sound",
    "candidate_starts",
    "initial_responsibilities",
    "kmeans",
    "kmeans_plusplus",
    "stacked_kmeans",
    "stacked_kmeans_plusplus",
    "restart_kind",
    "split_merge_starts",
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
    return stacked_kmeans_plusplus(X, n_clusters, 1, rng)[0]


def stacked_kmeans_plusplus(X: np.ndarray, n_clusters: int, n_sets: int,
                            rng: np.random.Generator) -> np.ndarray:
    """:func:`kmeans_plusplus` ``n_sets`` times at once: seed indices of shape (n_sets, n_clusters).

    All sets advance together (one stacked distance computation per seed
    instead of one per set); with ``n_sets=1`` it draws the random stream of
    one :func:`kmeans_plusplus` call.
    """
    n = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    sq_norms = np.einsum("nd,nd->n", X, X)
    sets = np.arange(n_sets)
    centers = np.empty((n_sets, n_clusters), dtype=np.int64)
    centers[:, 0] = rng.integers(n, size=n_sets)
    first = centers[:, 0]
    closest = np.maximum(sq_norms[None] - 2 * X[first] @ X.T + sq_norms[first][:, None], 0.0)
    for c in range(1, n_clusters):
        total = closest.sum(axis=1)
        flat = total <= 0  # fewer distinct points than clusters: one random row
        candidates = np.empty((n_sets, n_trials), dtype=np.int64)
        if not flat.all():
            draws = rng.random(((~flat).sum(), n_trials)) * total[~flat, None]
            cum = np.cumsum(closest[~flat], axis=1)
            # np.searchsorted(cum, draws) for every set: the count of cum below each draw
            below = (cum[:, None, :] < draws[:, :, None]).sum(axis=2)
            candidates[~flat] = np.minimum(below, n - 1)
        if flat.any():
            candidates[flat] = rng.choice(n, size=flat.sum())[:, None]
        dist = np.maximum(
            sq_norms[None, None] - 2 * X[candidates] @ X.T + sq_norms[candidates][..., None], 0.0
        )
        dist = np.minimum(closest[:, None], dist)  # (n_sets, n_trials, n)
        best = np.argmin(dist.sum(axis=2), axis=1)
        centers[:, c] = candidates[sets, best]
        closest = dist[sets, best]
    return centers


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
    return stacked_kmeans(X, n_clusters, 1, rng, max_iter=max_iter)[0]


def stacked_kmeans(X: np.ndarray, n_clusters: int, n_sets: int, rng: np.random.Generator,
                   *, max_iter: int = 100) -> np.ndarray:
    """:func:`kmeans` ``n_sets`` times at once: labels of shape (n_sets, n_samples).

    Seeded by :func:`stacked_kmeans_plusplus`; the sets iterate together
    until each one's labels stop changing (with ``n_sets=1``, the same
    arithmetic and random stream as one :func:`kmeans` call).
    """
    n, d = X.shape
    k = n_clusters
    centers = X[stacked_kmeans_plusplus(X, k, n_sets, rng)]  # (n_sets, k, d)
    sq_norms = np.einsum("nd,nd->n", X, X)
    labels = np.full((n_sets, n), -1, dtype=np.int64)
    active = np.arange(n_sets)
    for _ in range(max_iter):
        c = centers[active]
        dist = (sq_norms[None, :, None] - 2 * X @ c.transpose(0, 2, 1)
                + np.einsum("skd,skd->sk", c, c)[:, None, :])
        new = np.argmin(dist, axis=2)
        moved = (new != labels[active]).any(axis=1)
        active, new = active[moved], new[moved]
        if not active.size:
            break
        labels[active] = new
        cell = (new + k * np.arange(active.size)[:, None]).ravel()  # (set, cluster) as one index
        counts = np.bincount(cell, minlength=active.size * k).reshape(-1, k)
        sums = np.stack([np.bincount(cell, weights=np.tile(X[:, j], active.size),
                                     minlength=active.size * k) for j in range(d)], axis=1)
        c = centers[active]
        filled = counts > 0
        c[filled] = sums.reshape(-1, k, d)[filled] / counts[filled][:, None]
        centers[active] = c
    return labels


def _nearest(Z: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Index of the nearest centre (Euclidean) for every row; centres (k, d) or (s, k, d)."""
    dist = (np.einsum("nd,nd->n", Z, Z)[:, None] - 2 * Z @ np.swapaxes(centers, -1, -2)
            + np.einsum("...kd,...kd->...k", centers, centers)[..., None, :])
    return np.argmin(dist, axis=-1)


def _ward(Z: np.ndarray, n_clusters: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                np.ndarray]:
    """Rows used and their Ward cluster labels (subsampled above the row cap)."""
    n = Z.shape[0]
    rows = np.arange(n)
    if n > HIERARCHICAL_MAX_ROWS:
        rows = np.sort(rng.choice(n, size=HIERARCHICAL_MAX_ROWS, replace=False))
    tree = hierarchy.linkage(Z[rows], method="ward")
    return rows, _cut(tree, n_clusters)


def _cut(tree: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels of the ``n_clusters`` clusters of a linkage matrix, in order of first row.

    The labels of :func:`scipy.cluster.hierarchy.cut_tree` (the tree with its
    last ``n_clusters - 1`` merges undone), which computes every cut and
    took 24 ms of Old Faithful's 0.3 s default fit; this follows each row's
    merges to its root instead. Where merge heights tie (exact duplicate
    rows, more clusters than distinct groups) the two may undo different
    merges of the same height, equally valid cuts.
    """
    n = tree.shape[0] + 1
    parent = np.arange(2 * n - 1)
    merges = tree[: n - n_clusters, :2].astype(np.int64)
    parent[merges[:, 0]] = parent[merges[:, 1]] = n + np.arange(len(merges))
    root = parent
    while True:  # pointer jumping: the depth halves each time
        jumped = root[root]
        if np.array_equal(jumped, root):
            break
        root = jumped
    _, first, inverse = np.unique(root[:n], return_index=True, return_inverse=True)
    return np.argsort(np.argsort(first))[inverse]


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
    if kind == "random":  # needs no units: uniform random responsibilities
        return _starting_responsibilities(X, n_components, kind, rng)
    return _starting_responsibilities(working_units(X, covariance_type), n_components, kind, rng)


def _starting_responsibilities(Z: np.ndarray, n_components: int, kind: str,
                               rng: np.random.Generator) -> np.ndarray:
    """:func:`initial_responsibilities` on data already in working units ``Z``."""
    n = Z.shape[0]
    resp = np.zeros((n, n_components))
    if kind == "random":
        resp = rng.uniform(size=(n, n_components))
        resp /= resp.sum(axis=1, keepdims=True)
    elif kind == "kmeans":
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


def candidate_starts(
    X: np.ndarray,
    n_components: int,
    n_starts: int,
    rng: np.random.Generator,
    covariance_type: str = "full",
    kinds: tuple[str, ...] = AUTO_CYCLE,
) -> np.ndarray:
    """Many starts for screening, ``kinds`` in turn, without repeats.

    Start ``j`` is of kind ``kinds[j % len(kinds)]``, as from
    :func:`initial_responsibilities`, but the starts of each kind are drawn
    together (stacked k-means, k-means++ and nearest-seed assignments on
    working units computed once), and every hard start that repeats an
    earlier one up to the order of its components is left out (k-means from
    different seedings often ends in the same partition; iterating both
    would spend time on one trajectory twice).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in any units.
    n_components : int
        Number of components.
    n_starts : int
        Number of starts drawn (at most that many returned).
    rng : numpy.random.Generator
        Random source.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Selects the standardization (see :func:`working_units`).
    kinds : tuple of str, default=AUTO_CYCLE
        Kinds of start (not ``"hierarchical"``), taken in turn.

    Returns
    -------
    ndarray of shape (n_distinct, n_samples, n_components)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [5.0], [5.2]])
    >>> candidate_starts(X, 2, 6, np.random.default_rng(0), kinds=("kmeans",)).shape
    (1, 4, 2)
    """
    Z = working_units(X, covariance_type)
    n, k = Z.shape[0], n_components
    which = np.arange(n_starts) % len(kinds)
    out = np.zeros((n_starts, n, k))
    hard = np.zeros(n_starts, dtype=bool)
    for code, kind in enumerate(kinds):
        slots = np.flatnonzero(which == code)
        m = slots.size
        if kind == "random":
            resp = rng.uniform(size=(m, n, k))
            out[slots] = resp / resp.sum(axis=2, keepdims=True)
            continue
        if kind == "kmeans":
            labels = stacked_kmeans(Z, k, m, rng)
        elif kind in ("k-means++", "random_from_data"):
            if kind == "k-means++":
                seeds = stacked_kmeans_plusplus(Z, k, m, rng)
            else:  # k distinct random rows per start
                seeds = _smallest(rng.random((m, n)), k)
            labels = _nearest(Z, Z[seeds])
            labels[np.arange(m)[:, None], seeds] = np.arange(k)  # each seed in its own cell
        else:
            raise ValueError(f"kinds must be taken from {INIT_PARAMS[1:]}, got {kind!r}.")
        out[slots[:, None], np.arange(n), labels] = 1.0
        hard[slots] = True
    return out[_first_of_each_partition(out, hard)]


def _smallest(values: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the ``k`` smallest entries of each row, smallest first.

    ``np.argsort(values, axis=1)[:, :k]`` (for distinct values) without
    sorting whole rows: a partition, then a sort of the ``k`` kept.
    """
    part = np.argpartition(values, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(values, part, axis=1),
                                               axis=1), axis=1)


@functools.cache
def _triu(d: int) -> tuple[np.ndarray, np.ndarray]:
    """``np.triu_indices(d)``, computed once per ``d`` (screening asks thousands of times)."""
    iu, ju = np.triu_indices(d)
    iu.flags.writeable = ju.flags.writeable = False
    return iu, ju


def _first_of_each_partition(resp: np.ndarray, hard: np.ndarray) -> np.ndarray:
    """Indices of the starts to keep: soft ones, and the first of each hard partition."""
    k = resp.shape[2]
    labels = resp.argmax(axis=2)  # (s, n)
    # relabel every partition by first appearance, so permuted labels compare equal
    present = labels[:, :, None] == np.arange(k)
    first = np.where(present.any(axis=1), present.argmax(axis=1), labels.shape[1])  # (s, k)
    rank = np.argsort(np.argsort(first, axis=1), axis=1)
    canonical = np.take_along_axis(rank, labels, axis=1).astype(np.min_scalar_type(k))
    keep = ~hard
    firsts: dict[bytes, int] = {}  # what np.unique(axis=0, return_index=True) gives, unsorted
    for j in np.flatnonzero(hard):
        firsts.setdefault(canonical[j].tobytes(), j)
    keep[list(firsts.values())] = True
    return np.flatnonzero(keep)


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
    features = _features(Z, covariance_type)
    n_starts, n, k = resp.shape
    out = np.empty_like(resp)
    bound = np.empty(n_starts)
    max_sq_norm = float(np.einsum("nd,nd->n", Z, Z).max())
    for lo in range(0, n_starts, _block_size(n, k, features.shape[0])):
        hi = lo + _block_size(n, k, features.shape[0])
        rt, bound[lo:hi] = _em_block(features, resp[lo:hi].transpose(0, 2, 1), covariance_type,
                                     reg, n_iter, max_sq_norm)
        out[lo:hi] = rt.transpose(0, 2, 1)
    return out, bound - np.log(scale).sum()


def _block_size(n_samples: int, n_components: int, n_features: int) -> int:
    """Starts per block: responsibilities, log-densities and their temporaries in budget."""
    return max(1, int(BATCH_ELEMENTS // max(1, n_samples * (4 * n_components + n_features))))


def _features(Z: np.ndarray, kind: str) -> np.ndarray:
    """Rows ``[1, z, second-order terms]`` as columns, shape (1 + d + t, n).

    Responsibilities times these give every EM statistic in one product
    (counts, sums, second moments), and the expanded log-densities are a
    coefficient matrix times them: ``z'Pz - 2 mu'Pz + mu'P mu`` with the
    upper triangle of ``z z'`` (``t = d (d + 1) / 2``) for full and tied
    covariances, ``z**2`` (``t = d``) for diagonal and spherical ones.
    """
    n, d = Z.shape
    if kind in ("full", "tied"):
        iu, ju = _triu(d)
        second = Z[:, iu] * Z[:, ju]
    else:
        second = Z * Z
    return np.ascontiguousarray(np.hstack([np.ones((n, 1)), Z, second]).T)


def _moments(features: np.ndarray, rt: np.ndarray, kind: str,
             reg: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """M-step of a (s, k, n) stack of responsibilities, from :func:`_features`.

    Returns the weights (s, k), the means (s, k, d), and the covariances:
    (s, k, d, d) for full and tied (tied broadcast over k), variances
    (s, k, d) for diag and spherical, each with ``reg`` on the diagonal.
    Second moments are raw (about 0, one product for every start), which
    costs a relative error ~``eps |mu|^2 / v`` in a component's variance
    ``v`` (the engine centres: ``em.m_step``). Where that could exceed
    ``eps`` * :data:`CENTRING_RATIO` (a component narrower than 1e-3 of
    its distance from the data's mean, in working units: near-collapsed
    ones), the scatter is recomputed about the component's mean
    (:func:`_centred_scatter`), so the remaining error is ~1e-10 relative.
    """
    s, k, n = rt.shape
    stats = (rt.reshape(s * k, n) @ features.T).reshape(s, k, -1)
    d = reg.shape[0]
    nk = stats[..., 0] + 10 * np.finfo(float).eps  # (s, k)
    means = stats[..., 1:1 + d] / nk[..., None]
    full = kind in ("full", "tied")
    if full:
        iu, ju = _triu(d)
        second = np.empty((s, k, d, d))
        second[..., iu, ju] = second[..., ju, iu] = stats[..., 1 + d:]
        scatter = second - nk[..., None, None] * means[..., :, None] * means[..., None, :]
        spread = np.diagonal(scatter, axis1=2, axis2=3)
    else:
        scatter = stats[..., 1 + d:] - nk[..., None] * means**2  # (s, k, d)
        spread = scatter
    risky = (np.einsum("skd,skd->sk", means, means)
             >= CENTRING_RATIO * (spread / nk[..., None] + reg).min(axis=2))
    if risky.any():
        scatter[risky] = _centred_scatter(features[1:1 + d], rt, means, risky, full)
    if kind == "tied":
        cov = np.broadcast_to(scatter.sum(axis=1, keepdims=True)
                              / nk.sum(axis=1)[:, None, None, None], scatter.shape) + np.diag(reg)
    elif full:
        cov = scatter / nk[..., None, None] + np.diag(reg)
    else:
        cov = scatter / nk[..., None] + reg  # (s, k, d)
        if kind == "spherical":
            cov = np.repeat(cov.mean(axis=2, keepdims=True), d, axis=2)
    return nk / nk.sum(axis=1, keepdims=True), means, cov


#: Raw second moments lose ``eps |mu|^2 / v`` of a variance ``v``: above this ratio
#: of ``|mu|^2`` to the smallest variance (1e-10 relative error) :func:`_moments` centres.
CENTRING_RATIO = 1e6


def _centred_scatter(Zt: np.ndarray, rt: np.ndarray, means: np.ndarray, which: np.ndarray,
                     full: bool) -> np.ndarray:
    """Scatter about its own mean of every (start, component) marked in ``which``.

    ``Zt`` is (d, n) (the data rows of :func:`_features`); returns (m, d, d)
    for ``full``, else the (m, d) diagonal, for the ``m`` marked pairs in
    ``np.nonzero`` order, in blocks that keep the (m, n, d) temporary small.
    """
    starts, comps = np.nonzero(which)
    d, n = Zt.shape
    out = np.empty((starts.size, d, d) if full else (starts.size, d))
    block = max(1, BATCH_ELEMENTS // (n * d))
    for lo in range(0, starts.size, block):
        j, c = starts[lo:lo + block], comps[lo:lo + block]
        centred = Zt.T[None] - means[j, c][:, None, :]  # (m, n, d)
        weighted = centred * rt[j, c][..., None]
        if full:
            out[lo:lo + block] = np.swapaxes(weighted, 1, 2) @ centred
        else:
            out[lo:lo + block] = np.einsum("mnd,mnd->md", weighted, centred)
    return out


#: As the engine's ``em._EXPANSION_BOUND``: above this bound on ``max |z|^2 trace(P)``
#: the expanded quadratic form could lose more than ~1e-8; those components are
#: recomputed through their Cholesky factors.
EXPANSION_BOUND = 1e8


def _em_block(features: np.ndarray, rt: np.ndarray, kind: str, reg: np.ndarray,
              n_iter: int, max_sq_norm: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`batched_em` on one block of starts, responsibilities as (s, k, n)."""
    s, k, n = rt.shape
    d = reg.shape[0]
    alive = np.ones(s, dtype=bool)
    total = np.full(s, -np.inf)
    for _ in range(n_iter):
        weights, means, cov = _moments(features, rt, kind, reg)
        coef = np.empty((s, k, features.shape[0]))
        if kind in ("full", "tied"):
            chol, alive = _batched_cholesky(cov, alive)
            inv_chol = np.linalg.inv(chol)
            prec = np.swapaxes(inv_chol, 2, 3) @ inv_chol  # (s, k, d, d)
            lin = np.einsum("skij,skj->ski", prec, means)
            iu, ju = _triu(d)
            coef[..., 1 + d:] = prec[..., iu, ju] * np.where(iu == ju, -0.5, -1.0)
            log_det = np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
            quad_mean = np.einsum("ski,ski->sk", means, lin)
            risky = max_sq_norm * np.einsum("skii->sk", prec) >= EXPANSION_BOUND
        else:
            var = cov
            bad = ~(var > 0).all(axis=(1, 2))
            alive &= ~bad
            var[bad] = 1.0
            prec = 1.0 / var
            lin = means * prec
            coef[..., 1 + d:] = -0.5 * prec
            log_det = 0.5 * np.log(var).sum(axis=2)
            quad_mean = (means * lin).sum(axis=2)
            risky = np.zeros((s, k), dtype=bool)
        coef[..., 1:1 + d] = lin
        coef[..., 0] = np.log(weights) - log_det - 0.5 * (quad_mean + d * np.log(2 * np.pi))
        log_prob = (coef.reshape(s * k, -1) @ features).reshape(s, k, n)
        for j, c in zip(*np.nonzero(risky), strict=True):  # exact, through the factor
            # the constant afresh: coef[..., 0] holds -mu'P mu / 2, huge for these components,
            # and adding it back would cost eps mu'P mu per row
            y = (features[1:1 + d].T - means[j, c]) @ inv_chol[j, c].T
            log_prob[j, c] = (np.log(weights[j, c]) - log_det[j, c]
                              - 0.5 * (np.einsum("nd,nd->n", y, y) + d * np.log(2 * np.pi)))
        top = log_prob.max(axis=1, keepdims=True)
        log_prob -= top  # then exp in place, floored as in em._normalise_inplace
        rt = np.exp(np.maximum(log_prob, -700.0, out=log_prob), out=log_prob)
        norm = rt.sum(axis=1, keepdims=True)
        rt /= norm
    if n_iter:
        total = (np.log(norm) + top)[:, 0, :].mean(axis=1)
    total[~alive] = -np.inf
    return rt, total


def batched_sound(
    X: np.ndarray,
    resp: np.ndarray,
    covariance_type: str,
    reg_covar: float,
    rounding: np.ndarray | None = None,
) -> np.ndarray:
    """Whether the M-step from each start has no collapsed component, all at once.

    The rule of :func:`bayesgmm.em.collapsed_components` (too few points, on
    the ``reg_covar`` floor, singular relative to the data, below the data's
    rounding), applied to the stacked M-step of every start in working units
    by one call of :func:`bayesgmm.em.collapsed_from_full` on all their
    components together, instead of one M-step and one eigen-decomposition
    per start. The three eigenvalue tests are unit-free, and the pooled call
    sees the same mixture spread as each start's own (weights divided by the
    number of starts: every M-step from responsibilities that sum to one per
    row has the data's mean and covariance plus ``reg_covar``), so the answer
    is that of one call per start for full, tied and diagonal covariances;
    for spherical ones the relative-singularity test uses the starts' average
    spread per feature.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, in any units.
    resp : ndarray of shape (n_starts, n_samples, n_components)
        Responsibilities, rows summing to one.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance parametrisation.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance, in
        data units.
    rounding : ndarray of shape (n_features,), optional
        The data's rounding variance (:func:`bayesgmm.em.rounding_variance`),
        in data units; ``None`` skips that test.

    Returns
    -------
    ndarray of bool of shape (n_starts,)

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [5.3]])
    >>> good = np.repeat(np.eye(2), 3, axis=0)
    >>> lonely = np.repeat(np.eye(2), [5, 1], axis=0)  # one row cannot make a variance
    >>> batched_sound(X, np.stack([good, lonely]), "full", 1e-6).tolist()
    [True, False]
    """
    from bayesgmm.em import collapsed_from_full  # em imports this module

    Z = working_units(X, covariance_type)
    scale = working_scale(X.std(axis=0), covariance_type)
    reg = reg_covar / scale**2
    features = _features(Z, covariance_type)
    n_starts, n, k = resp.shape
    d = Z.shape[1]
    block = _block_size(n, k, features.shape[0])
    weights = np.empty((n_starts, k))
    means = np.empty((n_starts, k, d))
    covs = np.empty((n_starts, k, d, d))
    for lo in range(0, n_starts, block):
        w, m, c = _moments(features, resp[lo:lo + block].transpose(0, 2, 1), covariance_type,
                           reg)
        weights[lo:lo + block], means[lo:lo + block] = w, m
        covs[lo:lo + block] = c if c.ndim == 4 else c[..., None] * np.eye(d)
    steps = None if rounding is None else np.asarray(rounding, dtype=float) / scale**2
    bad = collapsed_from_full(weights.ravel() / n_starts, means.reshape(-1, d),
                              covs.reshape(-1, d, d), covariance_type, n * n_starts, reg,
                              rounding=steps)
    sound = np.ones(n_starts, dtype=bool)
    sound[bad // k] = False
    return sound


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
