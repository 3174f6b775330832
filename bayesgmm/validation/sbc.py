"""Simulation-based calibration (SBC) of :class:`~bayesgmm.BayesGMM`: the study.

Talts, Betancourt, Simpson, Vehtari and Gelman (2018), "Validating Bayesian
inference algorithms with simulation-based calibration", arXiv:1804.06788.
Each replication draws parameters from the prior
(:func:`bayesgmm.bayes.spec.sample_prior`), simulates a data set from them
(:func:`bayesgmm.bayes.spec.simulate_mixture`), fits ``BayesGMM`` and records
the rank of every test quantity of the truth among the posterior draws
(:mod:`bayesgmm.validation.ranks`).

Label switching: the components of the truth and of every posterior draw are
sorted by their first mean coordinate before comparing.  An order statistic
is a function of the parameters that does not depend on the labels, so its
rank is uniform under correct inference whatever the sampler's labelling.  The
log-likelihood of the simulated data set is reported as well (also invariant).

Every ``covariance_type`` of the model is supported; only the covariance
entries the type leaves free are ranked (the lower triangle per component for
``full``, once for the shared ``tied`` matrix, the variances for ``diag``, one
variance per component for ``spherical``); zeros and copies fixed by the
structure carry no information.

Fitting goes through the public :class:`~bayesgmm.BayesGMM`, imported when a
study runs; R-hat comes from arviz-stats; matplotlib is imported only inside
:func:`plot_ecdf_difference`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from arviz_stats.base import array_stats

from bayesgmm._validation import validate_covariance_type
from bayesgmm.bayes.spec import prior_model_data, sample_prior, simulate_mixture
from bayesgmm.posterior import pointwise_log_likelihood
from bayesgmm.validation import ranks as rank_stats

__all__ = [
    "SBCResult",
    "label_invariant_quantities",
    "plot_ecdf_difference",
    "run_sbc",
]


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
    covariance_type = validate_covariance_type(covariance_type)
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
        cols.append(pointwise_log_likelihood(X, weights, means, covariances).sum(axis=-1))
    return names, np.stack(cols, axis=1)



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
        """Chi-square statistic and p-value per quantity.

        See :func:`~bayesgmm.validation.ranks.chi_square_uniformity`.

        Parameters
        ----------
        n_bins : int, default=10
            Number of rank bins.

        Returns
        -------
        statistic, pvalue : ndarray of shape (P,)
        """
        return rank_stats.chi_square_uniformity(self.ranks, self.n_ranks, n_bins)

    def band_test(self, prob: float = 0.95, n_simulations: int = 4000
                  ) -> tuple[np.ndarray, np.ndarray]:
        """ECDF band test per quantity (see :func:`~bayesgmm.validation.ranks.ecdf_band_test`).

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
        return rank_stats.ecdf_band_test(self.ranks, self.n_ranks, prob, n_simulations)

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
    missing_share: float = 0.0,
) -> SBCResult:
    """Run simulation-based calibration of BayesGMM.

    Each replication draws parameters with
    :func:`~bayesgmm.bayes.spec.sample_prior` (the prior of
    :func:`~bayesgmm.bayes.spec.prior_model_data`), simulates
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
        Every prior key (data units), see :func:`~bayesgmm.bayes.spec.prior_model_data`.
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
    missing_share : float, default=0.0
        Share of the simulated entries removed (NaN) completely at random
        before fitting, keeping one entry of every row: calibration of the
        fit on incomplete data (the ``loglik`` quantity is then the
        observed-data log-likelihood).

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
    covariance_type = validate_covariance_type(covariance_type)
    # the prior, checked before any fit (a missing key raises)
    md = prior_model_data(n_components, n_features, priors, reg_covar, covariance_type)
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
        w, m, c = sample_prior(md, covariance_type, 1, rng)
        X = simulate_mixture(w[0], m[0], c[0], n_samples, rng)
        if missing_share > 0:
            holes = rng.random(X.shape) < missing_share
            holes[holes.all(axis=1), 0] = False
            X = np.where(holes, np.nan, X)
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
        keep = rank_stats.thin_draws(n_draw, min(n_keep, n_draw))
        pw = post["weights"].values[:, keep]
        pm_ = post["means"].values[:, keep]
        pc = post["covariances"].values[:, keep]
        s = n_chain * keep.size
        names, truth = label_invariant_quantities(w, m, c, X, covariance_type=covariance_type)
        _, q = label_invariant_quantities(pw.reshape(s, *pw.shape[2:]),
                                          pm_.reshape(s, *pm_.shape[2:]),
                                          pc.reshape(s, *pc.shape[2:]), X,
                                          covariance_type=covariance_type)
        ranks.append(rank_stats.rank_statistic(truth[0], q, rng))
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
                    "covariance_type": covariance_type, "missing_share": missing_share,
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
        grid, hw, _, _ = rank_stats.simultaneous_band(res.ranks.shape[0], res.n_ranks, level,
                                                      n_simulations)
        ax.fill_between(grid, -hw, hw, color="0.85",
                        label=f"{level:.4g} simultaneous band")
        _, diff = rank_stats.ecdf_difference(res.ranks, res.n_ranks)
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
