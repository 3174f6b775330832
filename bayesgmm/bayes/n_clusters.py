"""The posterior of the number of clusters of a sparse finite mixture (NumPy only).

An overfitted mixture with ``K_max`` components and a small Dirichlet
concentration ``alpha`` (``BayesGMM(n_components=K_max,
priors={"weights_concentration": "sparse"})``: ``alpha ~ Gamma(10, 10 K_max)``)
empties the components the data do not need (Rousseau and Mengersen 2011).
The number of clusters is the number of *non-empty* components ``K+``: for
every posterior draw each observation is allocated to a component drawn from
its responsibilities at that draw, and the occupied components are counted
(Malsiner-Walli, Fruhwirth-Schnatter and Grun 2016, section 2.3; Fruhwirth-
Schnatter, Malsiner-Walli and Grun 2021).  The share of draws with ``K+ = k``
estimates ``P(K+ = k | data)``.

Label switching among ``K_max`` components, most of them empty, is resolved
for the *identified* clusters: the ``K0`` most occupied components of every
draw (``K0`` the modal ``K+``; for draws with ``K+ = K0`` exactly the
non-empty ones) are matched to an EM fit with ``K0`` components by the
Hungarian algorithm on the Kullback-Leibler divergence
(:func:`bayesgmm.bayes.relabel.relabel_draws`), and their weights are
renormalised among themselves (the weights of the clusters given that there
are ``K0``).  Summaries use the draws with ``K+ = K0``; R-hat and ESS use
every draw (the ``K0`` most occupied components), so that chains keep their
length.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import xarray as xr

from bayesgmm import posterior
from bayesgmm._constants import CHAIN, COMPONENT, DRAW, FEATURE, FEATURE_BIS
from bayesgmm.bayes.relabel import apply_permutation, relabel_draws
from bayesgmm.exceptions import DiagnosticsWarning

__all__ = [
    "CLUSTER",
    "IdentifiedClusters",
    "allocation_counts",
    "identify_clusters",
    "n_clusters",
    "n_clusters_diagnostics",
    "n_clusters_draws",
    "sparse_start",
]

#: Dimension of the identified clusters (the non-empty components, relabeled).
CLUSTER = "cluster"


def allocation_counts(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
    random_state: int | np.random.Generator | None = 0, budget: int | None = None,
) -> np.ndarray:
    """Observations allocated to each component, one allocation drawn per posterior draw.

    For draw ``s`` and observation ``n`` the component ``z_sn`` is drawn from
    the responsibilities ``r_snk``; the result counts ``#{n : z_sn = k}``.
    The responsibilities are computed for one block of observations at a
    time (:func:`bayesgmm.posterior.obs_blocks`), so memory stays bounded
    whatever the number of draws and observations.

    Parameters
    ----------
    X : ndarray of shape (n_obs, n_features)
        Data (NaN entries: the density of each row's observed part).
    weights : ndarray of shape (n_draws, n_components)
    means : ndarray of shape (n_draws, n_components, n_features)
    covariances : ndarray of shape (n_draws, n_components, n_features, n_features)
        Full covariances per draw.
    random_state : int, Generator or None, default=0
        Seed of the allocations (the same seed gives the same counts).
    budget : int, optional
        Bytes of float64 responsibilities per block (default
        :data:`bayesgmm.posterior.MEMORY_BUDGET`).

    Returns
    -------
    ndarray of int64, shape (n_draws, n_components)
        Counts; every row sums to ``n_obs``.

    Examples
    --------
    >>> X = np.array([[-5.0], [-5.1], [5.0]])
    >>> counts = allocation_counts(X, np.array([[0.5, 0.5, 1e-12]]),
    ...                            np.array([[[-5.0], [5.0], [0.0]]]), np.ones((1, 3, 1, 1)))
    >>> counts.tolist()
    [[2, 1, 0]]
    """
    rng = np.random.default_rng(random_state)
    X = np.asarray(X, dtype=float)
    weights = np.asarray(weights, dtype=float)
    n_draws, k = weights.shape
    counts = np.zeros(n_draws * k, dtype=np.int64)
    offsets = (np.arange(n_draws) * k)[:, None]
    for sl in posterior.obs_blocks(X.shape[0], n_draws, k, budget):
        lp = posterior.component_log_density(X[sl], weights, means, covariances)  # (S, n, K)
        lp -= lp.max(axis=-1, keepdims=True)
        np.exp(lp, out=lp)
        np.cumsum(lp, axis=-1, out=lp)
        u = rng.random(lp.shape[:2]) * lp[..., -1]  # inverse CDF of the unnormalised weights
        z = np.minimum((lp < u[..., None]).sum(axis=-1), k - 1)
        counts += np.bincount((offsets + z).ravel(), minlength=n_draws * k)
    return counts.reshape(n_draws, k)


def _draws(result: Any) -> tuple[xr.Dataset, np.ndarray, tuple[np.ndarray, ...]]:
    idata = posterior._idata(result)
    return (idata["posterior"].to_dataset(), posterior._observed(idata),
            posterior._stacked_draws(idata))


def _counts(result: Any, random_state: Any) -> tuple[xr.Dataset, np.ndarray, tuple, np.ndarray]:
    post, X, (w, m, c) = _draws(result)
    return post, X, (w, m, c), allocation_counts(X, w, m, c, random_state)


def n_clusters_draws(result: Any, random_state: int | None = 0) -> xr.DataArray:
    """The number of non-empty components ``K+`` at every posterior draw.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit (its posterior and observed data).
    random_state : int or None, default=0
        Seed of the allocations (:func:`allocation_counts`).

    Returns
    -------
    xarray.DataArray
        Integers, dims ``(chain, draw)``, name ``n_clusters``.
    """
    post, _, _, counts = _counts(result, random_state)
    shape = (post.sizes[CHAIN], post.sizes[DRAW])
    return xr.DataArray((counts > 0).sum(axis=1).reshape(shape), dims=(CHAIN, DRAW),
                        coords={CHAIN: post[CHAIN].values, DRAW: post[DRAW].values},
                        name="n_clusters")


def n_clusters(result: Any, random_state: int | None = 0) -> pd.Series:
    """Posterior probabilities of the number of non-empty components ``K+``.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit, typically ``BayesGMM(n_components=K_max,
        priors={"weights_concentration": "sparse"})``.
    random_state : int or None, default=0
        Seed of the allocations.

    Returns
    -------
    pandas.Series
        Index ``n_clusters`` (the values of ``K+`` seen, ascending), values the
        share of draws with that ``K+``; sums to 1.  ``attrs`` holds
        ``n_draws``, ``mode`` and ``n_components`` (``K_max``).
    """
    kplus = n_clusters_draws(result, random_state).values.ravel()
    values, freq = np.unique(kplus, return_counts=True)
    out = pd.Series(freq / kplus.size, index=pd.Index(values, name="n_clusters"),
                    name="probability")
    out.attrs = {"n_draws": int(kplus.size), "mode": int(values[np.argmax(freq)]),
                 "n_components": int(_draws(result)[0].sizes[COMPONENT])}
    return out


def n_clusters_diagnostics(result: Any, random_state: int | None = 0,
                           warn: bool = True) -> pd.DataFrame:
    """R-hat and ESS of ``K+`` and of the concentration ``alpha`` across chains.

    ``K+`` is an integer; the rank-normalised R-hat and ESS of ArviZ apply to
    it as to any scalar (ties are ranked together).  Chains that settle on
    different numbers of clusters are the failure to look for: the modal
    ``K+`` of every chain is kept in ``attrs["chain_modes"]``.

    Parameters
    ----------
    result : GMMResult or xarray.DataTree
        A Bayesian fit.
    random_state : int or None, default=0
        Seed of the allocations.
    warn : bool, default=True
        Emit a :class:`bayesgmm.DiagnosticsWarning` when the chains' modal
        ``K+`` differ or an R-hat exceeds :data:`bayesgmm.posterior.RHAT_MAX`.

    Returns
    -------
    pandas.DataFrame
        Rows ``n_clusters`` and (when sampled) ``alpha``; columns ``mean``,
        ``r_hat``, ``ess_bulk``, ``ess_tail``.
    """
    kplus = n_clusters_draws(result, random_state)
    post = _draws(result)[0]
    series = {"n_clusters": kplus.astype(float)}
    if "alpha" in post:
        series["alpha"] = post["alpha"]
    rows = {}
    for name, da in series.items():
        da = da.transpose(CHAIN, DRAW)
        rows[name] = {"mean": float(da.mean()), **_rhat_ess(da)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    modes = [int(np.bincount(chain).argmax()) for chain in kplus.values]
    table.attrs = {"chain_modes": modes}
    if warn:
        problems = []
        if len(set(modes)) > 1:
            problems.append(f"the chains disagree on the number of clusters (modal K+ per "
                            f"chain: {modes})")
        bad = table.index[table["r_hat"] > posterior.RHAT_MAX].tolist()
        if bad:
            problems.append(f"R-hat > {posterior.RHAT_MAX} for {', '.join(bad)}")
        if problems:
            warnings.warn("Sparse mixture: " + "; ".join(problems) + ". Run longer chains "
                          "or more of them; the posterior of K+ is not reliable yet.",
                          DiagnosticsWarning, stacklevel=2)
    return table


def _rhat_ess(da: xr.DataArray) -> dict[str, float]:
    """ArviZ's R-hat, bulk and tail ESS of one (chain, draw) array; NaN for a constant one."""
    import arviz as az

    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # constant chains: 0 / 0
        return {"r_hat": float(az.rhat(da)), "ess_bulk": float(az.ess(da, method="bulk")),
                "ess_tail": float(az.ess(da, method="tail"))}


class IdentifiedClusters(NamedTuple):
    """The non-empty components of a sparse mixture, relabeled (:func:`identify_clusters`).

    Attributes
    ----------
    n_clusters : int
        ``K0``, the number of identified clusters (the modal ``K+`` by default).
    draws : xarray.Dataset
        ``weights`` (chain, draw, cluster; renormalised among the clusters),
        ``means`` (chain, draw, cluster, feature), ``covariances`` (chain,
        draw, cluster, feature, feature_bis), ``component`` (chain, draw,
        cluster: which of the K_max components it was), ``n_clusters``
        (chain, draw: ``K+``) and ``selected`` (chain, draw: ``K+ == K0``).
    share : float
        Share of draws with ``K+ == K0`` (those the summaries use).
    """

    n_clusters: int
    draws: xr.Dataset
    share: float

    def summary(self, prob: float = 0.89) -> pd.DataFrame:
        """Mean, sd and equal-tailed interval over the selected draws; R-hat and ESS over all.

        Parameters
        ----------
        prob : float, default=0.89
            Interval mass.

        Returns
        -------
        pandas.DataFrame
            One row per scalar (``weights[c]``, ``means[c, f]``,
            ``covariances[c, f, g]`` with ``g <= f``), columns ``mean``, ``sd``, ``lower``,
            ``upper``, ``r_hat``, ``ess_bulk``.
        """
        ds = self.draws
        selected = ds["selected"].values.ravel()
        rows = []
        q = [(1 - prob) / 2, (1 + prob) / 2]
        for var in ("weights", "means", "covariances"):
            da = ds[var]
            flat = da.values.reshape(-1, *da.shape[2:])
            for idx in np.ndindex(*da.shape[2:]):
                if var == "covariances" and idx[1] < idx[2]:
                    continue  # symmetric: the lower triangle only
                vals = flat[(slice(None), *idx)]
                chosen = vals[selected]
                one = da.values[(slice(None), slice(None), *idx)]
                diag = _rhat_ess(xr.DataArray(one, dims=(CHAIN, DRAW)))
                lo, hi = np.quantile(chosen, q)
                rows.append({"parameter": f"{var}[{', '.join(map(str, idx))}]",
                             "mean": chosen.mean(), "sd": chosen.std(ddof=1),
                             "lower": lo, "upper": hi, "r_hat": diag["r_hat"],
                             "ess_bulk": diag["ess_bulk"]})
        return pd.DataFrame(rows).set_index("parameter")


def identify_clusters(result: Any, n_clusters: int | None = None,
                      random_state: int | None = 0) -> IdentifiedClusters:
    """The non-empty components of every draw, relabeled against an EM fit with K0 clusters.

    Parameters
    ----------
    result : GMMResult
        A Bayesian fit (``covariance_type`` taken from it).
    n_clusters : int, optional
        ``K0``; default the modal ``K+``.
    random_state : int or None, default=0
        Seed of the allocations and of the EM reference.

    Returns
    -------
    IdentifiedClusters
    """
    from bayesgmm import em
    from bayesgmm.estimators import EMGMM

    post, X, (w, m, c), counts = _counts(result, random_state)
    n_chain, n_draw = post.sizes[CHAIN], post.sizes[DRAW]
    kplus = (counts > 0).sum(axis=1)
    k0 = int(np.bincount(kplus).argmax()) if n_clusters is None else int(n_clusters)
    k_max = w.shape[1]
    if not 1 <= k0 <= k_max:
        raise ValueError(f"n_clusters must be between 1 and n_components={k_max}; got {k0}.")
    # the K0 most occupied components of each draw (counts are integers and weights
    # below 1: ties in the count go to the larger weight)
    order = np.argsort(-(counts + w), axis=1, kind="stable")
    chosen = np.sort(order[:, :k0], axis=1)
    take = np.arange(w.shape[0])[:, None]
    ws, ms, cs = w[take, chosen], m[take, chosen], c[take, chosen]
    kind = getattr(result, "covariance_type", "full")
    d = X.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = EMGMM(k0, covariance_type=kind, n_init=5, random_state=random_state,
                    missing="marginalize").fit(X)
    ref_cov = em.full_covariances(ref.covariances_, kind, k0, d)
    info = relabel_draws(ms, cs, ref.means_, ref_cov)
    perm = info.permutation
    ws = apply_permutation(ws, perm)
    ms = apply_permutation(ms, perm)
    cs = apply_permutation(cs, perm)
    comp = apply_permutation(chosen, perm)
    ws = ws / ws.sum(axis=1, keepdims=True)
    shape = (n_chain, n_draw)
    feats = post[FEATURE].values
    cl = np.arange(k0)
    ds = xr.Dataset(
        {"weights": ((CHAIN, DRAW, CLUSTER), ws.reshape(*shape, k0)),
         "means": ((CHAIN, DRAW, CLUSTER, FEATURE), ms.reshape(*shape, k0, d)),
         "covariances": ((CHAIN, DRAW, CLUSTER, FEATURE, FEATURE_BIS),
                         cs.reshape(*shape, k0, d, d)),
         "component": ((CHAIN, DRAW, CLUSTER), comp.reshape(*shape, k0)),
         "n_clusters": ((CHAIN, DRAW), kplus.reshape(shape)),
         "selected": ((CHAIN, DRAW), (kplus == k0).reshape(shape))},
        coords={CHAIN: post[CHAIN].values, DRAW: post[DRAW].values, CLUSTER: cl,
                FEATURE: feats, FEATURE_BIS: feats},
        attrs={"reference": "em", "cost": "kl", "n_permuted": int(info.n_permuted)},
    )
    return IdentifiedClusters(k0, ds, float(np.mean(kplus == k0)))


def sparse_start(X: np.ndarray, n_components: int, covariance_type: str = "full",
                 reg_covar: float = 1e-6, concentration: float | None = None,
                 random_state: int | None = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Starting values for a sparse mixture: the BIC-best EM fit, padded with empty components.

    NUTS moves the weights continuously, so a chain started at an EM fit with
    all ``K_max`` components in use has to drain every superfluous component
    down to the tiny weights the sparse prior gives an empty one (about
    ``exp(-1 / alpha)`` on the log scale), which took hundreds of draws on
    three clusters with ``K_max = 10``.  Here EM is fitted for ``K = 1, ...,
    K_max`` (k-means starts, 2 runs each), the fit with the lowest BIC is
    kept, and the ``K_max - K`` other components start empty: weight
    ``alpha / N`` each (the mean of ``Beta(alpha, N)``, the weight of an empty
    component given the others), mean at the data mean and covariance the
    data covariance.  The posterior is unchanged; chains still move between
    numbers of clusters, and :func:`n_clusters_diagnostics` checks that they
    agree.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data without missing entries.
    n_components : int
        ``K_max``.
    covariance_type : str, default="full"
    reg_covar : float, default=1e-6
        EM's floor.
    concentration : float, optional
        ``alpha`` for the empty weights (default ``1 / K_max``).
    random_state : int or None, default=0

    Returns
    -------
    weights : ndarray of shape (K_max,)
    means : ndarray of shape (K_max, D)
    covariances : ndarray of shape (K_max, D, D)
        Full matrices.
    """
    from bayesgmm import em
    from bayesgmm.estimators import EMGMM

    X = np.asarray(X, dtype=float)
    n, d = X.shape
    k_max = int(n_components)
    best, best_bic = None, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for k in range(1, k_max + 1):
            if k >= n:
                break
            fit = EMGMM(k, covariance_type=covariance_type, reg_covar=reg_covar,
                        init_params="kmeans", n_init=2, random_state=random_state).fit(X)
            bic = fit.bic(X)
            if bic < best_bic:
                best, best_bic = fit, bic
    k = best.n_components
    alpha = 1.0 / k_max if concentration is None else float(concentration)
    w_empty = alpha / n
    weights = np.concatenate([best.weights_ * (1 - (k_max - k) * w_empty),
                              np.full(k_max - k, w_empty)])
    means = np.concatenate([best.means_, np.tile(X.mean(axis=0), (k_max - k, 1))])
    cov = np.atleast_2d(np.cov(X, rowvar=False)) + reg_covar * np.eye(d)
    covs = np.concatenate([em.full_covariances(best.covariances_, covariance_type, k, d),
                           np.tile(cov, (k_max - k, 1, 1))])
    return weights, means, covs
