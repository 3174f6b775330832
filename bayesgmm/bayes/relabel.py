"""Label switching and component matching, on arrays of component parameters.

NumPy and SciPy only.  Each draw's components are matched to the reference
components (for example the EM fit) by the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`) on the Kullback-Leibler
divergence between the Gaussian components; the reference is then replaced by
the mean of the relabeled draws and the matching repeated until no draw changes
(at most ``max_iter`` rounds).  :func:`match_components` matches two point
estimates (for example an EM and a Bayesian fit) the same way, on the
symmetrised divergence.  :func:`kl_cost` is the package's one Kullback-Leibler
formula between Gaussian components.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["RelabelInfo", "apply_permutation", "kl_cost", "match_components",
           "relabel_draws", "switches_within_chains", "symmetric_kl"]


class RelabelInfo(NamedTuple):
    """Outcome of :func:`relabel_draws`.

    Attributes
    ----------
    permutation : ndarray of shape (n_draws, n_components)
        ``permutation[s, k]`` is the draw-``s`` component that receives label ``k``.
    n_permuted : int
        Number of draws whose permutation is not the identity.
    n_iter : int
        Matching rounds run.
    """

    permutation: np.ndarray
    n_permuted: int
    n_iter: int


def kl_cost(
    means: np.ndarray,
    covariances: np.ndarray,
    ref_means: np.ndarray,
    ref_covariances: np.ndarray,
) -> np.ndarray:
    """Kullback-Leibler divergence of every draw component from every reference component.

    Parameters
    ----------
    means : ndarray of shape (n_draws, n_components, n_features)
        Component means of each draw.
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Component covariances of each draw.
    ref_means : ndarray of shape (n_components, n_features)
        Reference means.
    ref_covariances : ndarray of shape (n_components, n_features, n_features)
        Reference covariances.

    Returns
    -------
    ndarray of shape (n_draws, n_components, n_components)
        ``cost[s, j, k] = KL(N(means[s, j], covariances[s, j]) || N(ref_k))``.

    Examples
    --------
    >>> m = np.zeros((1, 1, 2)); c = np.eye(2)[None, None]
    >>> float(kl_cost(m, c, m[0], c[0])[0, 0, 0])
    0.0
    """
    d = means.shape[-1]
    ref_prec = np.linalg.inv(ref_covariances)  # (K, D, D)
    _, ref_logdet = np.linalg.slogdet(ref_covariances)  # (K,)
    _, logdet = np.linalg.slogdet(covariances)  # (S, K)
    trace = np.einsum("kab,sjba->sjk", ref_prec, covariances)
    diff = means[:, :, None, :] - ref_means[None, None, :, :]  # (S, J, K, D)
    maha = np.einsum("sjka,kab,sjkb->sjk", diff, ref_prec, diff)
    return 0.5 * (trace + maha - d + ref_logdet[None, None, :] - logdet[:, :, None])


def symmetric_kl(
    means_a: np.ndarray,
    covariances_a: np.ndarray,
    means_b: np.ndarray,
    covariances_b: np.ndarray,
) -> np.ndarray:
    """Symmetrised Kullback-Leibler divergence between every pair of components.

    The mean of the two directions, ``(KL(a_j || b_k) + KL(b_k || a_j)) / 2``,
    both from :func:`kl_cost`.

    Parameters
    ----------
    means_a : ndarray of shape (n_components_a, n_features)
    covariances_a : ndarray of shape (n_components_a, n_features, n_features)
    means_b : ndarray of shape (n_components_b, n_features)
    covariances_b : ndarray of shape (n_components_b, n_features, n_features)

    Returns
    -------
    ndarray of shape (n_components_a, n_components_b)

    Examples
    --------
    >>> m = np.array([[0.0], [1.0]]); c = np.ones((2, 1, 1))
    >>> symmetric_kl(m, c, m, c).round(3).tolist()
    [[0.0, 0.5], [0.5, 0.0]]
    """
    means_a = np.asarray(means_a, dtype=float)
    means_b = np.asarray(means_b, dtype=float)
    covariances_a = np.asarray(covariances_a, dtype=float)
    covariances_b = np.asarray(covariances_b, dtype=float)
    a_from_b = kl_cost(means_a[None], covariances_a[None], means_b, covariances_b)[0]
    b_from_a = kl_cost(means_b[None], covariances_b[None], means_a, covariances_a)[0]
    return 0.5 * (a_from_b + b_from_a.T)


def _assignment(cost: np.ndarray) -> np.ndarray:
    """Hungarian assignment of a (candidate, reference) cost.

    ``out[k]`` is the candidate that receives reference label ``k``.
    """
    rows, cols = linear_sum_assignment(cost)
    out = np.empty(cost.shape[1], dtype=int)
    out[cols] = rows
    return out


def match_components(
    means: np.ndarray,
    covariances: np.ndarray,
    ref_means: np.ndarray,
    ref_covariances: np.ndarray,
) -> np.ndarray:
    """Permutation of components that best matches a reference's components.

    The Hungarian algorithm on :func:`symmetric_kl` between the components.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
        Means of the components to relabel.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Their full covariances.
    ref_means : ndarray of shape (n_components, n_features)
        Reference means.
    ref_covariances : ndarray of shape (n_components, n_features, n_features)
        Reference covariances.

    Returns
    -------
    ndarray of shape (n_components,)
        ``perm[k]`` is the component that receives reference label ``k``, so
        ``means[perm]`` lines up with ``ref_means`` (as a row of
        :attr:`RelabelInfo.permutation`).

    Examples
    --------
    >>> ref = np.array([[0.0], [5.0], [9.0]]); c = np.ones((3, 1, 1))
    >>> match_components(ref[[2, 0, 1]] + 0.1, c, ref, c).tolist()
    [1, 2, 0]
    """
    means = np.asarray(means, dtype=float)
    ref_means = np.asarray(ref_means, dtype=float)
    if means.shape != ref_means.shape:
        raise ValueError(f"means has shape {means.shape} but ref_means {ref_means.shape}; "
                         "match components of the same K and features.")
    return _assignment(symmetric_kl(means, covariances, ref_means, ref_covariances))


def apply_permutation(values: np.ndarray, permutation: np.ndarray) -> np.ndarray:
    """Reorder the component axis (axis 1) of per-draw values.

    Parameters
    ----------
    values : ndarray of shape (n_draws, n_components, ...)
        Per-draw, per-component values.
    permutation : ndarray of shape (n_draws, n_components)
        From :func:`relabel_draws`.

    Returns
    -------
    ndarray
        ``out[s, k] = values[s, permutation[s, k]]``.

    Examples
    --------
    >>> apply_permutation(np.array([[1.0, 2.0]]), np.array([[1, 0]])).tolist()
    [[2.0, 1.0]]
    """
    idx = permutation.reshape(permutation.shape + (1,) * (values.ndim - 2))
    return np.take_along_axis(values, idx, axis=1)


def relabel_draws(
    means: np.ndarray,
    covariances: np.ndarray,
    ref_means: np.ndarray,
    ref_covariances: np.ndarray,
    *,
    max_iter: int = 10,
) -> RelabelInfo:
    """Find, for every draw, the permutation of components closest to a reference.

    Parameters
    ----------
    means : ndarray of shape (n_draws, n_components, n_features)
        Component means of each draw (chains stacked).
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Component covariances of each draw.
    ref_means : ndarray of shape (n_components, n_features)
        Reference means, e.g. from the EM fit.
    ref_covariances : ndarray of shape (n_components, n_features, n_features)
        Reference covariances.
    max_iter : int, default=10
        Maximum rounds of matching and reference update.

    Returns
    -------
    RelabelInfo
        ``permutation`` (n_draws, n_components), ``n_permuted`` and ``n_iter``.

    Examples
    --------
    >>> ref_m = np.array([[0.0], [5.0]]); ref_c = np.ones((2, 1, 1))
    >>> m = np.array([[[5.1], [0.1]], [[0.0], [4.9]]]); c = np.ones((2, 2, 1, 1))
    >>> info = relabel_draws(m, c, ref_m, ref_c)
    >>> info.permutation.tolist(), info.n_permuted
    ([[1, 0], [0, 1]], 1)
    """
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    n_draws, k = means.shape[:2]
    ref_m = np.asarray(ref_means, dtype=float)
    ref_c = np.asarray(ref_covariances, dtype=float)
    perm = np.tile(np.arange(k), (n_draws, 1))
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        cost = kl_cost(means, covariances, ref_m, ref_c)
        new = np.array([_assignment(cost[s]) for s in range(n_draws)], dtype=int).reshape(
            n_draws, k)
        changed = not np.array_equal(new, perm)
        perm = new
        if not changed and n_iter > 1:
            break
        ref_m = apply_permutation(means, perm).mean(axis=0)
        ref_c = apply_permutation(covariances, perm).mean(axis=0)
    n_permuted = int(np.sum(np.any(perm != np.arange(k), axis=1)))
    return RelabelInfo(permutation=perm, n_permuted=n_permuted, n_iter=n_iter)


def switches_within_chains(permutation: np.ndarray) -> int:
    """Count label switches inside chains.

    A switch is a change of labeling from one draw to the next within a
    chain. A chain that settled in another labeling than the reference is
    relabeled but does not switch; a chain that moves to another labeling
    once and stays there switches once.

    Parameters
    ----------
    permutation : ndarray of shape (n_chains, n_draws, n_components)
        The permutation of every draw, as found by :func:`relabel_draws`.

    Returns
    -------
    int
        Consecutive pairs of draws, within a chain, whose labelings differ.

    Examples
    --------
    >>> same = np.array([[1, 0]] * 4)            # a whole chain in the other labeling
    >>> away_and_back = np.array([[0, 1], [1, 0], [0, 1], [0, 1]])
    >>> switches_within_chains(np.stack([same, away_and_back]))
    2
    """
    permutation = np.asarray(permutation)
    if permutation.ndim != 3:
        raise ValueError("permutation: expected an array of shape (n_chains, n_draws, "
                         f"n_components), got shape {permutation.shape}.")
    changed = np.any(permutation[:, 1:] != permutation[:, :-1], axis=-1)
    return int(changed.sum())
