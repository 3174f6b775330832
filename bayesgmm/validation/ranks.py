"""Ranks of simulation-based calibration and tests of their uniformity.

If ``theta ~ p(theta)``, ``y ~ p(y | theta)`` and ``theta_1..theta_L`` are
independent draws of ``p(theta | y)``, the rank of a scalar ``f(theta)`` among
the ``f(theta_l)`` is uniform on ``{0, ..., L}`` (Talts et al. 2018).  This
module ranks a truth among draws and tests a set of ranks for uniformity:
Pearson's chi-square on bins (SciPy) and the ECDF difference (the ECDF of
:func:`arviz_stats.ecdf_utils.compute_ecdf`) with a simulated simultaneous
band.  NumPy, SciPy and arviz-stats only.
"""

from __future__ import annotations

import numpy as np
from arviz_stats.ecdf_utils import compute_ecdf
from scipy import stats

__all__ = [
    "chi_square_uniformity",
    "ecdf_band_test",
    "ecdf_difference",
    "rank_statistic",
    "simultaneous_band",
    "thin_draws",
]


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
    # integer ranks: #{r <= t - 1/2} = #{r < t}
    if ranks.ndim == 1:
        return grid, compute_ecdf(ranks, t - 0.5) - grid
    ecdf = np.stack([compute_ecdf(ranks[:, p], t - 0.5) for p in range(ranks.shape[1])], axis=1)
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

    Why not :func:`arviz_stats.ecdf_utils.simulate_confidence_bands`: its band
    has the same coverage on discrete ranks (measured on R = 200 sets of ranks
    on ``{0..100}``, 4000 uniform sets: 4.7 % outside for arviz-stats' 0.95
    band, 4.8 % for this one), but it returns only the band's pointwise level;
    this function also returns the simulated maxima, from which
    :func:`ecdf_band_test` gives every quantity a p-value, which
    docs/calibration.md reports.

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


