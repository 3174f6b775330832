"""Simulation-based calibration (SBC) of :class:`~bayesgmm.BayesGMM`.

Talts, Betancourt, Simpson, Vehtari and Gelman (2018), "Validating Bayesian
inference algorithms with simulation-based calibration", arXiv:1804.06788.
If ``theta ~ p(theta)``, ``y ~ p(y | theta)`` and ``theta_1..theta_L`` are
independent draws of ``p(theta | y)``, the rank of ``f(theta)`` among the
``f(theta_l)`` is uniform on ``{0, ..., L}`` for every scalar function ``f``.

Label switching: the components of the truth and of every posterior draw are
sorted by their first mean coordinate before comparing.  An order statistic
is a function of the parameters that does not depend on the labels, so its
rank is uniform under correct inference whatever the sampler's labelling.  The
log-likelihood of the simulated data set is reported as well (also invariant).

Every ``covariance_type`` of the model is supported: :func:`sample_prior`
draws from that type's prior, and only the covariance entries the type leaves
free are ranked (the lower triangle per component for ``full``, once for the
shared ``tied`` matrix, the variances for ``diag``, one variance per component
for ``spherical``); zeros and copies fixed by the structure carry no information.

The statistics (ranks, chi-square, ECDF bands) use NumPy and SciPy only;
fitting goes through the public :class:`~bayesgmm.BayesGMM`, imported when a
study runs, and matplotlib only inside :func:`plot_ecdf_difference`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from arviz_stats.base import array_stats
from scipy import stats

from bayesgmm._constants import COVARIANCE_TYPES
from bayesgmm.bayes.params import corr_cholesky_from_cpc
from bayesgmm.posterior import pointwise_log_likelihood

__all__ = [
    "SBCResult",
    "chi_square_uniformity",
    "ecdf_band_test",
    "ecdf_difference",
    "label_invariant_quantities",
    "mixture_log_likelihood",
    "plot_ecdf_difference",
    "rank_statistic",
    "run_sbc",
    "sample_prior",
    "simulate_data",
    "simultaneous_band",
    "thin_draws",
]


# ----------------------------------------------------------------------
# prior draws and simulation (NumPy), matching bayesgmm.bayes.model
# ----------------------------------------------------------------------


def _lkj_cholesky(eta: float, n_features: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Cholesky factors of ``LKJ(eta)`` correlation matrices (C-vine method).

    Partial correlation ``(i, j)``, ``j < i``: ``2 u - 1`` with ``u ~ Beta(b, b)``,
    ``b = eta + (D - 2 - j) / 2`` (Lewandowski, Kurowicka and Joe 2009, section 2.4),
    mapped to the factor by the model's own C-vine map
    (:func:`bayesgmm.bayes.params.corr_cholesky_from_cpc`).
    """
    cols = np.tril_indices(n_features, k=-1)[1]
    b = eta + (n_features - 2 - cols) / 2.0
    z = 2.0 * rng.beta(b, b, size=(size, b.size)) - 1.0
    return corr_cholesky_from_cpc(z, n_features)


def _check_covariance_type(covariance_type: Any) -> str:
    """Return ``covariance_type`` if it is one of :data:`COVARIANCE_TYPES`."""
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {list(COVARIANCE_TYPES)}, got {covariance_type!r}."
        )
    return str(covariance_type)


def sample_prior(
    n_components: int,
    n_features: int,
    priors: Mapping[str, Any],
    reg_covar: float,
    size: int,
    random_state: int | np.random.Generator | None = None,
    *,
    covariance_type: str = "full",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw mixture parameters from BayesGMM's prior.

    The prior is that of ``BayesGMM(covariance_type=covariance_type,
    priors=priors, reg_covar=reg_covar)`` when every prior key is given (data
    units), so that it does not depend on the data.  The model works in
    standardized units ``(X - center) / scale`` and divides every data-unit
    prior setting by ``scale``; multiplying back, the prior in data units is
    (all draws independent):

    - ``w ~ Dirichlet(alpha)`` and ``mu_kd ~ Normal(means_loc_d, means_scale_d)``;
    - ``full``: ``sd_kd ~ HalfNormal(sd_scale_d)``, correlation ``Omega_k ~
      LKJ(lkj_eta)`` per component, ``Sigma_k = diag(sd_k) Omega_k diag(sd_k)
      + reg_covar I``;
    - ``tied``: one ``sd_d ~ HalfNormal(sd_scale_d)`` and one ``Omega ~
      LKJ(lkj_eta)`` shared by every component, ``Sigma_k = diag(sd) Omega
      diag(sd) + reg_covar I``;
    - ``diag``: ``Sigma_k = diag(sd_k^2) + reg_covar I``, ``sd_kd ~
      HalfNormal(sd_scale_d)``;
    - ``spherical``: ``Sigma_k = (sd_k^2 + reg_covar) I`` with ``sd_k ~
      HalfNormal(mean_d sd_scale_d)`` (the model divides every feature by the
      same scale and uses the mean of the standardized ``sd_scale``).

    Parameters
    ----------
    n_components : int
        Number of components ``K``.
    n_features : int
        Number of features ``D``.
    priors : mapping
        All of ``weights_concentration``, ``means_loc``, ``means_scale``,
        ``sd_scale`` and, for ``full`` and ``tied``, ``lkj_eta`` (floats or
        arrays as in ``BayesGMM``).
    reg_covar : float
        Floor added to every variance (data units).
    size : int
        Number of draws.
    random_state : int, Generator or None, default=None
        Seed.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure of the model.

    Returns
    -------
    weights : ndarray of shape (size, K)
    means : ndarray of shape (size, K, D)
    covariances : ndarray of shape (size, K, D, D)
        Full matrices whatever ``covariance_type`` (as in ``BayesGMM``'s posterior).

    Raises
    ------
    ValueError
        If a prior key is missing (the default would depend on the data) or
        ``covariance_type`` is unknown.

    Examples
    --------
    >>> pri = dict(weights_concentration=2.0, means_loc=0.0, means_scale=3.0,
    ...            sd_scale=1.0, lkj_eta=2.0)
    >>> w, m, c = sample_prior(2, 2, pri, 1e-9, 5, random_state=0)
    >>> w.shape, m.shape, c.shape
    ((5, 2), (5, 2, 2), (5, 2, 2, 2))
    >>> _, _, c = sample_prior(2, 2, pri, 0.0, 5, random_state=0, covariance_type="spherical")
    >>> bool(np.all(c[..., 0, 1] == 0) and np.all(c[..., 0, 0] == c[..., 1, 1]))
    True
    """
    covariance_type = _check_covariance_type(covariance_type)
    required = ["weights_concentration", "means_loc", "means_scale", "sd_scale"]
    if covariance_type in ("full", "tied"):
        required.append("lkj_eta")
    missing = [key for key in required if key not in priors or priors[key] is None]
    if missing:
        raise ValueError(
            f"priors must give every key {required} so that the prior does not "
            f"depend on the data; missing {missing}."
        )
    rng = np.random.default_rng(random_state)
    K, D = int(n_components), int(n_features)
    alpha = np.broadcast_to(np.asarray(priors["weights_concentration"], float), (K,))
    loc = np.broadcast_to(np.asarray(priors["means_loc"], float), (D,))
    mscale = np.broadcast_to(np.asarray(priors["means_scale"], float), (D,))
    sscale = np.broadcast_to(np.asarray(priors["sd_scale"], float), (D,))
    weights = rng.dirichlet(alpha, size=size) if K > 1 else np.ones((size, 1))
    means = loc + mscale * rng.standard_normal((size, K, D))
    eye = np.eye(D)
    if covariance_type == "full":
        sd = np.abs(sscale * rng.standard_normal((size, K, D)))
        chol = _lkj_cholesky(float(priors["lkj_eta"]), D, size * K, rng).reshape(size, K, D, D)
        A = sd[..., :, None] * chol
        cov = A @ np.swapaxes(A, -1, -2)
    elif covariance_type == "tied":
        sd = np.abs(sscale * rng.standard_normal((size, D)))
        chol = _lkj_cholesky(float(priors["lkj_eta"]), D, size, rng)
        A = sd[..., :, None] * chol
        cov = np.broadcast_to((A @ np.swapaxes(A, -1, -2))[:, None], (size, K, D, D))
    elif covariance_type == "diag":
        sd = np.abs(sscale * rng.standard_normal((size, K, D)))
        cov = sd[..., :, None] ** 2 * eye
    else:  # spherical
        sd = np.abs(float(np.mean(sscale)) * rng.standard_normal((size, K)))
        cov = sd[..., None, None] ** 2 * eye
    return weights, means, cov + float(reg_covar) * eye


def simulate_data(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    n_samples: int,
    random_state: int | np.random.Generator | None = None,
) -> np.ndarray:
    """Simulate one data set from a Gaussian mixture.

    Parameters
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
    n_samples : int
        Number of rows.
    random_state : int, Generator or None, default=None
        Seed.

    Returns
    -------
    ndarray of shape (n_samples, D)

    Examples
    --------
    >>> simulate_data(np.array([1.0]), np.zeros((1, 2)), np.eye(2)[None], 4, 0).shape
    (4, 2)
    """
    rng = np.random.default_rng(random_state)
    K, D = means.shape
    z = rng.choice(K, size=n_samples, p=weights / weights.sum())
    chol = np.linalg.cholesky(covariances)
    return means[z] + np.einsum("nab,nb->na", chol[z], rng.standard_normal((n_samples, D)))


def mixture_log_likelihood(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray
) -> np.ndarray:
    """Log-likelihood of ``X`` under each of S mixtures.

    Parameters
    ----------
    X : ndarray of shape (N, D)
    weights : ndarray of shape (S, K)
    means : ndarray of shape (S, K, D)
    covariances : ndarray of shape (S, K, D, D)

    Returns
    -------
    ndarray of shape (S,)
        ``sum_n log sum_k w_k N(x_n | mu_k, Sigma_k)``.

    Examples
    --------
    >>> float(mixture_log_likelihood(np.zeros((1, 1)), np.ones((1, 1)),
    ...                              np.zeros((1, 1, 1)), np.ones((1, 1, 1, 1)))[0])
    -0.9189385332046727
    """
    return pointwise_log_likelihood(X, weights, means, covariances).sum(axis=-1)


def label_invariant_quantities(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    X: np.ndarray | None = None,
    *,
    covariance_type: str = "full",
) -> tuple[list[str], np.ndarray]:
    """Scalar test quantities that do not depend on the labels.

    Components are sorted by their first mean coordinate (an order statistic);
    then ``weights[k]`` (all but the last, which is determined), every
    ``means[k, d]`` of the sorted components, the free covariance entries
    and, when ``X`` is given, ``loglik``, the log-likelihood of ``X``.  The
    covariance entries are those the model does not fix:

    ============  ==============================================================
    type          covariance quantities
    ============  ==============================================================
    ``full``      lower triangle ``covariances[k,i,j]``, ``j <= i``, per component
    ``tied``      lower triangle of the shared matrix, ``covariances[:,i,j]``
    ``diag``      variances ``covariances[k,d,d]``
    ``spherical`` one variance per component, ``covariances[k,0,0]``
    ============  ==============================================================

    Parameters
    ----------
    weights : ndarray of shape (S, K)
    means : ndarray of shape (S, K, D)
    covariances : ndarray of shape (S, K, D, D)
        Full matrices.
    X : ndarray of shape (N, D) or None, default=None
        Data for the ``loglik`` quantity.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Which covariance entries are free.

    Returns
    -------
    names : list of str
    values : ndarray of shape (S, P)

    Examples
    --------
    >>> names, v = label_invariant_quantities(np.array([[0.3, 0.7]]),
    ...     np.array([[[2.0], [-1.0]]]), np.array([[[[1.0]], [[4.0]]]]))
    >>> names
    ['weights[0]', 'means[0,0]', 'means[1,0]', 'covariances[0,0,0]', 'covariances[1,0,0]']
    >>> v.tolist()
    [[0.7, -1.0, 2.0, 4.0, 1.0]]
    >>> label_invariant_quantities(np.array([[0.3, 0.7]]), np.zeros((1, 2, 2)),
    ...     np.tile(np.eye(2), (1, 2, 1, 1)), covariance_type="tied")[0][-3:]
    ['covariances[:,0,0]', 'covariances[:,1,0]', 'covariances[:,1,1]']
    """
    covariance_type = _check_covariance_type(covariance_type)
    S, K, D = means.shape
    order = np.argsort(means[:, :, 0], axis=1, kind="stable")
    idx = np.arange(S)[:, None]
    w, m, c = weights[idx, order], means[idx, order], covariances[idx, order]
    names: list[str] = []
    cols: list[np.ndarray] = []
    for k in range(K - 1):
        names.append(f"weights[{k}]")
        cols.append(w[:, k])
    for k in range(K):
        for d in range(D):
            names.append(f"means[{k},{d}]")
            cols.append(m[:, k, d])
    if covariance_type == "full":
        entries = [(f"covariances[{k},{i},{j}]", k, i, j)
                   for k in range(K) for i in range(D) for j in range(i + 1)]
    elif covariance_type == "tied":  # one matrix shared by the components: rank it once
        entries = [(f"covariances[:,{i},{j}]", 0, i, j) for i in range(D) for j in range(i + 1)]
    elif covariance_type == "diag":
        entries = [(f"covariances[{k},{d},{d}]", k, d, d) for k in range(K) for d in range(D)]
    else:  # spherical: the same variance on every feature
        entries = [(f"covariances[{k},0,0]", k, 0, 0) for k in range(K)]
    for name, k, i, j in entries:
        names.append(name)
        cols.append(c[:, k, i, j])
    if X is not None:
        names.append("loglik")
        cols.append(mixture_log_likelihood(X, weights, means, covariances))
    return names, np.stack(cols, axis=1)


# ----------------------------------------------------------------------
# ranks and uniformity tests (NumPy/SciPy)
# ----------------------------------------------------------------------


def thin_draws(n_draws: int, n_keep: int) -> np.ndarray:
    """Indices of ``n_keep`` evenly spaced draws out of ``n_draws`` (one chain).

    Parameters
    ----------
    n_draws : int
        Draws in the chain.
    n_keep : int
        Draws to keep (``<= n_draws``).

    Returns
    -------
    ndarray of int, shape (n_keep,)

    Examples
    --------
    >>> thin_draws(10, 5).tolist()
    [1, 3, 5, 7, 9]
    """
    if not 1 <= n_keep <= n_draws:
        raise ValueError(f"n_keep must be between 1 and n_draws={n_draws}; got {n_keep}.")
    step = n_draws // n_keep
    return np.arange(n_draws - step * (n_keep - 1) - 1, n_draws, step)[:n_keep]


def rank_statistic(
    truth: np.ndarray, draws: np.ndarray, random_state: int | np.random.Generator | None = None
) -> np.ndarray:
    """Rank of each true value among the posterior draws.

    Parameters
    ----------
    truth : ndarray of shape (P,)
        True values.
    draws : ndarray of shape (L, P)
        Posterior draws.
    random_state : int, Generator or None, default=None
        Breaks ties at random (ties are rare for continuous parameters).

    Returns
    -------
    ndarray of int, shape (P,)
        ``#{l : draws[l] < truth}`` plus a uniform share of the ties; in
        ``{0, ..., L}``.

    Examples
    --------
    >>> rank_statistic(np.array([0.5]), np.array([[0.1], [0.9], [0.3]])).tolist()
    [2]
    """
    rng = np.random.default_rng(random_state)
    truth = np.asarray(truth, float)
    draws = np.asarray(draws, float)
    below = np.sum(draws < truth, axis=0)
    ties = np.sum(draws == truth, axis=0)
    return below + rng.integers(0, ties + 1)


def chi_square_uniformity(
    ranks: np.ndarray, n_ranks: int, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Pearson chi-square test that ranks are uniform on ``{0, ..., n_ranks - 1}``.

    The ranks are grouped into ``n_bins`` contiguous bins; the expected count
    of each bin is exact for the discrete uniform (bins may differ in width by
    one rank when ``n_bins`` does not divide ``n_ranks``).

    Parameters
    ----------
    ranks : ndarray of int, shape (R,) or (R, P)
        Ranks of R replications (per parameter in columns).
    n_ranks : int
        Number of possible ranks, ``L + 1`` for L posterior draws.
    n_bins : int, default=10
        Number of bins; use at least 5 expected counts per bin.

    Returns
    -------
    statistic : ndarray of shape (P,) (or scalar array)
    pvalue : ndarray of shape (P,) (or scalar array)
        Chi-square with ``n_bins - 1`` degrees of freedom.

    Examples
    --------
    >>> stat, p = chi_square_uniformity(np.arange(100) % 20, 20, n_bins=5)
    >>> float(stat), float(p)
    (0.0, 1.0)
    """
    ranks = np.asarray(ranks)
    if ranks.min() < 0 or ranks.max() >= n_ranks:
        raise ValueError(f"ranks must lie in [0, {n_ranks - 1}]; got "
                         f"[{ranks.min()}, {ranks.max()}].")
    if not 2 <= n_bins <= n_ranks:
        raise ValueError(f"n_bins must be between 2 and n_ranks={n_ranks}; got {n_bins}.")
    edges = np.linspace(0, n_ranks, n_bins + 1).round().astype(int)  # bins [e_b, e_{b+1})
    prob = np.diff(edges) / n_ranks
    b = np.searchsorted(edges, ranks, side="right") - 1  # bin of each rank
    squeeze = ranks.ndim == 1
    b2 = b[:, None] if squeeze else b
    counts = np.stack([(b2 == j).sum(axis=0) for j in range(n_bins)], axis=0)  # (B, P)
    expected = prob[:, None] * b2.shape[0]
    stat = ((counts - expected) ** 2 / expected).sum(axis=0)
    p = stats.chi2.sf(stat, df=n_bins - 1)
    return (stat[0], p[0]) if squeeze else (stat, p)


def ecdf_difference(ranks: np.ndarray, n_ranks: int) -> tuple[np.ndarray, np.ndarray]:
    """ECDF of the ranks minus the uniform CDF, at every rank threshold.

    Parameters
    ----------
    ranks : ndarray of int, shape (R,) or (R, P)
    n_ranks : int
        Number of possible ranks ``L + 1``.

    Returns
    -------
    grid : ndarray of shape (n_ranks - 1,)
        Fractions ``t / n_ranks`` for ``t = 1..n_ranks-1``.
    diff : ndarray of shape (n_ranks - 1,) or (n_ranks - 1, P)
        ``#{r < t} / R - t / n_ranks``.

    Examples
    --------
    >>> g, d = ecdf_difference(np.array([0, 1, 2, 3]), 4)
    >>> d.tolist()
    [0.0, 0.0, 0.0]
    """
    ranks = np.asarray(ranks)
    t = np.arange(1, n_ranks)
    grid = t / n_ranks
    if ranks.ndim == 1:
        ecdf = np.searchsorted(np.sort(ranks), t, side="left") / ranks.shape[0]
        return grid, ecdf - grid
    srt = np.sort(ranks, axis=0)
    ecdf = np.stack([np.searchsorted(srt[:, p], t, side="left") for p in range(ranks.shape[1])],
                    axis=1) / ranks.shape[0]
    return grid, ecdf - grid[:, None]


def _max_standardized(diff: np.ndarray, grid: np.ndarray, n_rep: int) -> np.ndarray:
    sd = np.sqrt(grid * (1.0 - grid) / n_rep)
    sd = sd.reshape((-1,) + (1,) * (diff.ndim - 1))
    return np.max(np.abs(diff) / sd, axis=0)


def simultaneous_band(
    n_replications: int,
    n_ranks: int,
    prob: float = 0.95,
    n_simulations: int = 4000,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """Simultaneous band for the ECDF difference of uniform ranks, by simulation.

    ``n_simulations`` sets of ``n_replications`` ranks uniform on ``{0, ...,
    n_ranks - 1}`` are drawn; for each, the largest ECDF difference over the
    grid divided by its binomial standard deviation ``sqrt(F (1 - F) / R)`` is
    recorded; the band is ``+- c * sd`` with ``c`` the ``prob`` quantile of
    that maximum.  With probability ``prob`` the whole curve of uniform ranks
    stays inside.

    Parameters
    ----------
    n_replications : int
        Number of SBC replications ``R``.
    n_ranks : int
        Number of possible ranks ``L + 1``.
    prob : float, default=0.95
        Simultaneous coverage.
    n_simulations : int, default=4000
        Simulated rank sets.
    random_state : int, Generator or None, default=0
        Seed.

    Returns
    -------
    grid : ndarray of shape (n_ranks - 1,)
    half_width : ndarray of shape (n_ranks - 1,)
        The band is ``[-half_width, half_width]`` around zero difference.
    critical : float
        The quantile ``c``.
    null_max : ndarray of shape (n_simulations,)
        The simulated maxima (for p-values).

    Examples
    --------
    >>> g, hw, c, _ = simultaneous_band(50, 21, n_simulations=500)
    >>> bool(2.0 < c < 4.5), hw.shape
    (True, (20,))
    """
    if not 0 < prob < 1:
        raise ValueError(f"prob must be in (0, 1); got {prob}.")
    rng = np.random.default_rng(random_state)
    sims = rng.integers(0, n_ranks, size=(n_replications, n_simulations))
    grid, diff = ecdf_difference(sims, n_ranks)
    null_max = _max_standardized(diff, grid, n_replications)
    crit = float(np.quantile(null_max, prob))
    return grid, crit * np.sqrt(grid * (1 - grid) / n_replications), crit, null_max


def ecdf_band_test(
    ranks: np.ndarray,
    n_ranks: int,
    prob: float = 0.95,
    n_simulations: int = 4000,
    random_state: int | np.random.Generator | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Test whether each parameter's ECDF difference stays inside its simultaneous band.

    Parameters
    ----------
    ranks : ndarray of int, shape (R, P)
    n_ranks : int
        Number of possible ranks ``L + 1``.
    prob : float, default=0.95
        Simultaneous coverage of the band, per parameter.
    n_simulations : int, default=4000
        Simulated uniform rank sets.
    random_state : int, Generator or None, default=0
        Seed of the simulation.

    Returns
    -------
    inside : ndarray of bool, shape (P,)
    pvalue : ndarray of shape (P,)
        Fraction of simulated uniform rank sets whose standardized maximum
        difference is at least the observed one.

    Examples
    --------
    >>> r = np.tile(np.arange(21), 5)[:, None]
    >>> inside, p = ecdf_band_test(r, 21, n_simulations=500)
    >>> bool(inside[0]), float(p[0])
    (True, 1.0)
    """
    ranks = np.asarray(ranks)
    if ranks.ndim == 1:
        ranks = ranks[:, None]
    grid, _, crit, null_max = simultaneous_band(ranks.shape[0], n_ranks, prob, n_simulations,
                                                random_state)
    _, diff = ecdf_difference(ranks, n_ranks)
    obs = _max_standardized(diff, grid, ranks.shape[0])
    pvalue = (np.sum(null_max[None, :] >= obs[:, None] - 1e-12, axis=1) + 1) / (
        null_max.size + 1)
    return obs <= crit, np.minimum(pvalue, 1.0)


# ----------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------


@dataclass
class SBCResult:
    """Ranks and bookkeeping of an SBC study.

    Attributes
    ----------
    names : list of str
        Test quantities (see :func:`label_invariant_quantities`).
    ranks : ndarray of int, shape (R, P)
        Rank of the truth among the ``n_ranks - 1`` kept draws.
    n_ranks : int
        ``L + 1``.
    method : str
        BayesGMM ``method``.
    n_components, n_features, n_samples : int
        Configuration.
    divergences : ndarray of int, shape (R,)
        NUTS divergences per replication (0 for ADVI).
    max_rhat : ndarray of shape (R,)
        Largest R-hat of the test quantities per replication (NaN for ADVI).
    seconds : ndarray of shape (R,)
        Wall time per fit.
    n_failed : int
        Replications whose fit raised (skipped).
    config : dict
        Priors, ``reg_covar``, ``n_keep``, seed and fit settings.
    covariance_type : str
        BayesGMM ``covariance_type``; default ``"full"``.
    """

    names: list[str]
    ranks: np.ndarray
    n_ranks: int
    method: str
    n_components: int
    n_features: int
    n_samples: int
    divergences: np.ndarray
    max_rhat: np.ndarray
    seconds: np.ndarray
    n_failed: int = 0
    config: dict[str, Any] = field(default_factory=dict)
    covariance_type: str = "full"

    def chi_square(self, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Chi-square statistic and p-value per quantity (see :func:`chi_square_uniformity`).

        Parameters
        ----------
        n_bins : int, default=10
            Number of rank bins.

        Returns
        -------
        statistic, pvalue : ndarray of shape (P,)
        """
        return chi_square_uniformity(self.ranks, self.n_ranks, n_bins)

    def band_test(self, prob: float = 0.95, n_simulations: int = 4000
                  ) -> tuple[np.ndarray, np.ndarray]:
        """ECDF band test per quantity (see :func:`ecdf_band_test`).

        Parameters
        ----------
        prob : float, default=0.95
            Simultaneous coverage per quantity.
        n_simulations : int, default=4000
            Simulated uniform rank sets.

        Returns
        -------
        inside : ndarray of bool, shape (P,)
        pvalue : ndarray of shape (P,)
        """
        return ecdf_band_test(self.ranks, self.n_ranks, prob, n_simulations)

    def table(self, n_bins: int = 10, prob: float = 0.95) -> Any:
        """One row per quantity: chi-square p-value, band p-value, inside, tail shares.

        The tail shares count the ``round(0.05 * n_ranks)`` lowest and highest
        rank values (5 of 101: expected share 4.95 % each).

        Parameters
        ----------
        n_bins : int, default=10
            Chi-square bins.
        prob : float, default=0.95
            Band coverage.

        Returns
        -------
        pandas.DataFrame
        """
        import pandas as pd

        _, p_chi = self.chi_square(n_bins)
        inside, p_band = self.band_test(prob)
        # tails of equal size: the n_tail lowest and highest rank values (5 of 101)
        n_tail = max(1, round(0.05 * self.n_ranks))
        frac_low = np.mean(self.ranks < n_tail, axis=0)
        frac_high = np.mean(self.ranks >= self.n_ranks - n_tail, axis=0)
        return pd.DataFrame({"chi2_pvalue": p_chi, "band_pvalue": p_band,
                             f"inside_{prob:g}": inside, "frac_rank_lowest_5%": frac_low,
                             "frac_rank_highest_5%": frac_high}, index=self.names)


def run_sbc(
    n_replications: int,
    *,
    n_components: int = 2,
    n_features: int = 1,
    n_samples: int = 100,
    priors: Mapping[str, Any],
    reg_covar: float = 1e-9,
    method: str = "nuts",
    n_keep: int = 50,
    fit_kwargs: Mapping[str, Any] | None = None,
    random_state: int = 0,
    callback: Callable[[int, SBCResult], None] | None = None,
    covariance_type: str = "full",
) -> SBCResult:
    """Run simulation-based calibration of BayesGMM.

    Each replication draws parameters with :func:`sample_prior`, simulates
    ``n_samples`` rows, fits ``BayesGMM(covariance_type=covariance_type,
    priors=priors, reg_covar=reg_covar, method=method, **fit_kwargs)``, keeps
    ``n_keep`` evenly spaced draws per chain and records the rank of every
    label-invariant quantity (see :func:`label_invariant_quantities`).

    Parameters
    ----------
    n_replications : int
        Number of simulated data sets ``R``.
    n_components, n_features, n_samples : int
        ``K``, ``D`` and ``N``; defaults 2, 1, 100.
    priors : mapping
        Every prior key (data units), see :func:`sample_prior`.
    reg_covar : float, default=1e-9
        Variance floor; a fixed number so the prior does not depend on the data.
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
        Inference method.
    n_keep : int, default=50
        Draws kept per chain (thinning towards independent draws).
    fit_kwargs : mapping or None, default=None
        Further ``BayesGMM`` arguments (``draws``, ``tune``, ``chains``, ...).
    random_state : int, default=0
        Seed of the study; replication ``i`` is reproducible on its own.
    callback : callable or None, default=None
        Called as ``callback(i, partial_result)`` after each replication.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure of the prior draws and of the fitted model.

    Returns
    -------
    SBCResult

    Raises
    ------
    ValueError
        If ``covariance_type`` is unknown or a prior key is missing.
    RuntimeError
        If every replication failed to fit.

    Examples
    --------
    >>> pri = dict(weights_concentration=5.0, means_loc=0.0, means_scale=3.0,
    ...            sd_scale=1.0, lkj_eta=2.0)
    >>> res = run_sbc(3, n_features=1, n_samples=50, priors=pri)  # doctest: +SKIP
    >>> res.ranks.shape, res.n_ranks  # doctest: +SKIP
    ((3, 6), 101)
    """
    covariance_type = _check_covariance_type(covariance_type)
    # fail before any fit on a missing prior key
    sample_prior(n_components, n_features, priors, reg_covar, 1, 0,
                 covariance_type=covariance_type)
    from bayesgmm.bayes.estimator import BayesGMM

    kwargs: dict[str, Any] = {"draws": 200, "tune": 200, "chains": 2, "progressbar": False}
    kwargs.update(fit_kwargs or {})
    names: list[str] = []
    ranks, div, rhat, secs = [], [], [], []
    n_failed = 0
    result = None
    for i in range(n_replications):
        ss = np.random.SeedSequence([random_state, i])
        rng = np.random.default_rng(ss)
        w, m, c = sample_prior(n_components, n_features, priors, reg_covar, 1, rng,
                               covariance_type=covariance_type)
        X = simulate_data(w[0], m[0], c[0], n_samples, rng)
        est = BayesGMM(n_components, covariance_type=covariance_type, method=method,
                       priors=priors, reg_covar=reg_covar,
                       random_state=int(rng.integers(2**31 - 1)), **kwargs)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # divergences are recorded, not raised
                est.fit(X)
        except (ValueError, np.linalg.LinAlgError):
            n_failed += 1
            continue
        secs.append(time.perf_counter() - t0)
        post = est.result_.idata["posterior"].to_dataset()
        n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
        keep = thin_draws(n_draw, min(n_keep, n_draw))
        pw = post["weights"].values[:, keep]
        pm_ = post["means"].values[:, keep]
        pc = post["covariances"].values[:, keep]
        s = n_chain * keep.size
        names, truth = label_invariant_quantities(w, m, c, X, covariance_type=covariance_type)
        _, q = label_invariant_quantities(pw.reshape(s, *pw.shape[2:]),
                                          pm_.reshape(s, *pm_.shape[2:]),
                                          pc.reshape(s, *pc.shape[2:]), X,
                                          covariance_type=covariance_type)
        ranks.append(rank_statistic(truth[0], q, rng))
        by_chain = q.reshape(n_chain, keep.size, -1)
        rhat.append(float(np.nanmax(array_stats.rhat(by_chain, chain_axis=0, draw_axis=1,
                                                     method="split")))
                    if n_chain > 1 else np.nan)
        stats_ = est.result_.idata.get("sample_stats") if method == "nuts" else None
        div.append(int(stats_["diverging"].values.sum()) if stats_ is not None else 0)
        result = SBCResult(
            names=list(names), ranks=np.asarray(ranks), n_ranks=s + 1, method=method,
            n_components=n_components, n_features=n_features, n_samples=n_samples,
            divergences=np.asarray(div), max_rhat=np.asarray(rhat), seconds=np.asarray(secs),
            n_failed=n_failed,
            config={"priors": {k: np.asarray(v).tolist() for k, v in priors.items()},
                    "reg_covar": reg_covar, "n_keep": n_keep, "random_state": random_state,
                    "covariance_type": covariance_type,
                    **{k: v for k, v in kwargs.items() if k != "progressbar"}},
            covariance_type=covariance_type,
        )
        if callback is not None:
            callback(i, result)
    if result is None:
        raise RuntimeError(f"all {n_replications} SBC replications failed to fit.")
    result.n_failed = n_failed
    return result


def plot_ecdf_difference(
    results: Sequence[SBCResult],
    prob: float = 0.95,
    titles: Sequence[str] | None = None,
    bonferroni: bool = True,
    n_simulations: int = 4000,
) -> Any:
    """ECDF-difference plots of SBC ranks with simultaneous bands, one panel per study.

    Parameters
    ----------
    results : sequence of SBCResult
        Studies, one panel each.
    prob : float, default=0.95
        Coverage of the band.
    titles : sequence of str or None, default=None
        Panel titles.
    bonferroni : bool, default=True
        Divide ``1 - prob`` by the number of quantities of the panel, so the
        band holds for all of them at once (family-wise ``prob``).
    n_simulations : int, default=4000
        Simulated uniform rank sets for the band.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> res = SBCResult(names=["a"], ranks=np.arange(101)[:, None], n_ranks=101,
    ...                 method="nuts", n_components=2, n_features=1, n_samples=50,
    ...                 divergences=np.zeros(101), max_rhat=np.ones(101),
    ...                 seconds=np.ones(101))
    >>> fig = plot_ecdf_difference([res], n_simulations=200)  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False)
    for ax, res, title in zip(axes[0], results, titles or [None] * len(results), strict=True):
        n_q = res.ranks.shape[1]
        level = 1 - (1 - prob) / n_q if bonferroni else prob
        grid, hw, _, _ = simultaneous_band(res.ranks.shape[0], res.n_ranks, level, n_simulations)
        ax.fill_between(grid, -hw, hw, color="0.85",
                        label=f"{level:.4g} simultaneous band")
        _, diff = ecdf_difference(res.ranks, res.n_ranks)
        outside = np.any(np.abs(diff) > hw[:, None] + 1e-12, axis=0)
        for p in range(n_q):
            ax.plot(grid, diff[:, p], lw=1.0 if not outside[p] else 2.0,
                    label=res.names[p] if outside[p] else None)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("fractional rank")
        ax.set_ylabel("ECDF - uniform CDF")
        ax.set_title(title or f"{res.method}, {res.covariance_type}, K={res.n_components}, "
                     f"D={res.n_features}, R={res.ranks.shape[0]}")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig
