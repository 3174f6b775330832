"""Plots of fits and comparisons (matplotlib, imported inside each function).

Every function accepts ``ax=`` (or ``fig=`` for grids) and returns what it
drew on, so plots compose into a user's own figures.

Data with missing entries (NaN) are drawn completed: an incomplete row sits at
its conditional expectation given its observed entries
(:meth:`GMMResult.impute`), as a hollow marker counted in the legend
(``imputed (n rows)``); the principal axes for D > 2 are those of the
completed data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bayesgmm._validation import validate_choice, validate_int, validate_prob

if TYPE_CHECKING:  # never at run time: results imports this module
    from bayesgmm.results import GMMResult

__all__ = [
    "MAX_RINGED",
    "least_certain",
    "pca_projection",
    "plotted_data",
    "plot_clusters",
    "plot_criteria",
    "plot_n_clusters",
    "plot_model_bic",
    "plot_posterior_ellipses",
    "plot_ppc",
    "plot_rank",
    "plot_responsibilities",
    "plot_trace",
]

#: Mahalanobis radius of the drawn ellipses: 95% of a 2-D Gaussian's mass.
_ELLIPSE_RADIUS = np.sqrt(5.991464547107979)


def _axes(ax):
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6.4, 4.8))
    return ax


def _colors(n: int):
    import matplotlib.pyplot as plt

    cycle = plt.get_cmap("tab10")
    return [cycle(i % 10) for i in range(n)]


def _ellipse_path(mean: np.ndarray, cov: np.ndarray, radius: float = _ELLIPSE_RADIUS,
                  n_points: int = 100) -> np.ndarray:
    """Points (n_points, 2) on the ellipse ``(x - mean)' cov^-1 (x - mean) = radius^2``."""
    vals, vecs = np.linalg.eigh(cov)
    angle = np.linspace(0, 2 * np.pi, n_points)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    return (mean[:, None] + radius * vecs @ (np.sqrt(np.maximum(vals, 0))[:, None] * circle)).T


#: At most this many uncertain points are ringed, however large N is.
MAX_RINGED = 30
#: Points whose assigned component has at least this probability are never ringed.
_CERTAIN = 0.99


def pca_projection(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal axes of the standardised data.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, at least two features.

    Returns
    -------
    basis : ndarray of shape (n_features, 2)
        Maps data in its own units to scores on the two axes (``X @ basis``,
        up to a shift); the largest loading of each axis is positive.
    explained : ndarray of shape (2,)
        Fraction of the standardised data's total variance along each axis.

    Examples
    --------
    >>> X = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [2.0, 2.1, 1.0], [3.0, 2.9, 0.0]])
    >>> basis, explained = pca_projection(X)
    >>> basis.shape, bool(explained[0] > 0.6), bool(explained.sum() <= 1)
    ((3, 2), True, True)
    """
    X = np.asarray(X, dtype=float)
    if not np.isfinite(X).all():
        raise ValueError("pca_projection: X holds NaN or inf; pass completed data, e.g. "
                         "GMMResult.impute().values.")
    scale = X.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    _, sv, vt = np.linalg.svd((X - X.mean(axis=0)) / scale, full_matrices=False)
    axes = vt[:2] * np.sign(vt[:2][np.arange(2), np.abs(vt[:2]).argmax(axis=1)])[:, None]
    explained = sv[:2] ** 2 / max(float(np.sum(sv**2)), np.finfo(float).tiny)
    return (axes / scale).T, explained


def plotted_data(result) -> tuple[np.ndarray, np.ndarray]:
    """The fitted data as the plots draw them, and which rows were incomplete.

    Parameters
    ----------
    result : GMMResult
        A fit that kept its data.

    Returns
    -------
    data : ndarray of shape (n_samples, n_features)
        The data, missing entries replaced by their conditional expectation
        given the row's observed entries (:meth:`GMMResult.impute`).
    incomplete : ndarray of bool, shape (n_samples,)
        Rows that had at least one missing entry (all False for complete data).

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful().to_numpy()
    >>> X[:3, 0] = np.nan
    >>> data, incomplete = plotted_data(bg.EMGMM(2, random_state=0).fit(X).result_)
    >>> int(incomplete.sum()), bool(np.isfinite(data).all())
    (3, True)
    """
    observed = result.observed
    if observed is None:
        raise ValueError("result has no data to plot; fit with bayesgmm >= 0.1 to keep it.")
    X = np.asarray(observed.transpose("obs", "feature").values, dtype=float)
    missing = np.isnan(X)
    if not missing.any():
        return X, np.zeros(X.shape[0], dtype=bool)
    filled = np.asarray(result.impute().transpose("obs", "feature").values, dtype=float)
    return filled, missing.any(axis=1)


def _imputed_label(n_rows: int) -> str:
    return f"imputed ({n_rows} rows)"


def _projection(result, dims, projection: str, data: np.ndarray | None = None):
    """A (D, 2) matrix and an offset mapping features to the plotted plane, and axis labels.

    Plotted coordinates are ``X @ basis - offset``: principal-component scores
    are centred on the data mean. ``data`` is :func:`plotted_data`'s array when
    the caller has it already (it is computed here otherwise).
    """
    names = result.feature_names
    d = result.n_features
    if projection not in ("auto", "features", "pca"):
        raise ValueError(f"projection must be 'auto', 'features' or 'pca', got {projection!r}.")
    if projection in ("auto", "pca") and d > 2 and result.observed is not None:
        if data is None:
            data, _ = plotted_data(result)
        basis, explained = pca_projection(data)
        offset = data.mean(axis=0) @ basis
        return basis, offset, [f"PC{i + 1} ({100 * e:.1f}% of standardised variance)"
                       for i, e in enumerate(explained)]
    i, j = dims
    basis = np.zeros((d, 2))
    basis[i, 0] = basis[j, 1] = 1.0
    return basis, np.zeros(2), [names[i], names[j]]


def least_certain(result, max_points: int = MAX_RINGED) -> np.ndarray:
    """Positions of the points to ring as uncertain, least certain first.

    At most ``max_points`` and at most 5% of the points (at least one), and
    only points whose assigned component has probability below 0.99.

    Parameters
    ----------
    result : GMMResult
        Any fit.
    max_points : int, default=30
        Upper bound, so large data sets get a few dozen rings, not thousands.

    Returns
    -------
    ndarray of int
        Row positions into ``result.responsibilities``.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> fit = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
    >>> len(least_certain(fit)) <= 30
    True
    """
    max_points = validate_int(max_points, "max_points")
    prob = result.responsibilities.values.max(axis=1)
    n = min(max_points, max(1, int(np.ceil(0.05 * len(prob)))))
    order = np.argsort(prob, kind="stable")[:n]
    return order[prob[order] < _CERTAIN]


def plot_clusters(result, ax=None, *, dims: tuple[int, int] = (0, 1),
                  projection: str = "auto", show_uncertainty: bool = True):
    """Data coloured by component, with 95% covariance ellipses.

    Points are coloured by their most probable component; their opacity is
    the probability of that assignment, so uncertain points fade and the
    least certain (at most 30) are ringed. Rows with missing entries are
    drawn at their imputed values (:meth:`GMMResult.impute`, the conditional
    expectation given the observed entries) as hollow markers, counted in the
    legend as ``imputed (n rows)``; complete rows are filled dots.

    Parameters
    ----------
    result : GMMResult
        A fit that kept its data (every EMGMM/BayesGMM fit does).
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.
    dims : tuple of int, default=(0, 1)
        Features on the x and y axes (``projection="features"``).
    projection : {"auto", "features", "pca"}, default="auto"
        For D > 2, "pca" (and "auto") show the first two principal axes of
        the standardised data, labelled with the share of variance each
        explains, with the ellipses projected onto them; "features" shows
        the features ``dims``.
    show_uncertainty : bool, default=True
        Fade points by assignment probability and ring the least certain:
        at most 30, at most 5% of the points, and only those below 0.99.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    data = result.observed
    if data is None:
        raise ValueError("result has no data to plot; fit with bayesgmm >= 0.1 to keep it.")
    ax = _axes(ax)
    if result.n_features == 1:
        return _plot_clusters_1d(result, np.asarray(data.values, dtype=float)[:, 0], ax,
                                 show_uncertainty)
    X, incomplete = plotted_data(result)
    basis, offset, labels = _projection(result, dims, projection, X)
    points = X @ basis - offset
    resp = result.responsibilities.values
    assigned = resp.argmax(axis=1)
    prob = resp.max(axis=1)
    colors = np.array(_colors(result.n_components))
    rgba = colors[assigned].copy()
    if show_uncertainty:
        # opacity from the probability itself (1/K: a coin toss, 1: certain), not from its range
        chance = 1 / result.n_components
        rgba[:, 3] = 0.15 + 0.85 * np.clip((prob - chance) / max(1 - chance, 1e-12), 0, 1)
    size = max(18.0 * min(1.0, np.sqrt(2000 / max(len(X), 1))), 2.0)  # smaller for large N
    full = ~incomplete
    ax.scatter(points[full, 0], points[full, 1], c=rgba[full], s=size, linewidths=0)
    if incomplete.any():
        hollow = {"facecolors": "none", "s": max(size, 8.0), "linewidths": 0.9}
        ax.scatter(points[incomplete, 0], points[incomplete, 1], edgecolors=rgba[incomplete],
                   **hollow)
        # the legend's marker in neutral grey: the points themselves keep their colours
        ax.scatter([], [], edgecolors="0.35", label=_imputed_label(int(incomplete.sum())),
                   **hollow)
    if show_uncertainty:
        worst = least_certain(result)
        if worst.size:
            ax.scatter(points[worst, 0], points[worst, 1], facecolors="none",
                       edgecolors="black", s=60, linewidths=0.8,
                       label=f"{worst.size} least certain")
    weights, means, covs = result.point_estimate()
    for k in range(result.n_components):
        m = means.values[k] @ basis - offset
        c = basis.T @ covs.values[k] @ basis
        path = _ellipse_path(m, c)
        ax.plot(path[:, 0], path[:, 1], color=colors[k], lw=2,
                label=f"component {k} (w={float(weights.values[k]):.2f})")
        ax.plot(*m, marker="x", color=colors[k], ms=9, mew=2)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    where = " on the first two principal axes" if labels[0].startswith("PC1 (") else ""
    ax.set_title(f"{result.method.upper()} fit, K={result.n_components}: 95% ellipses{where}")
    ax.legend(loc="best", fontsize="small", frameon=False)
    plt.gcf().tight_layout()
    return ax


def _plot_clusters_1d(result, x: np.ndarray, ax, show_uncertainty: bool = True):
    from scipy import stats

    weights, means, covs = result.point_estimate()
    seen = x[np.isfinite(x)]  # a 1-D row whose one entry is missing has nothing to draw
    ax.hist(seen, bins="auto", density=True, color="0.85", edgecolor="0.6")
    grid = np.linspace(seen.min() - 0.1 * np.ptp(seen), seen.max() + 0.1 * np.ptp(seen), 400)
    total = np.zeros_like(grid)
    colors = _colors(result.n_components)
    for k, color in enumerate(colors):
        dens = float(weights.values[k]) * stats.norm.pdf(
            grid, means.values[k, 0], np.sqrt(covs.values[k, 0, 0]))
        total += dens
        ax.plot(grid, dens, color=color, lw=2,
                label=f"component {k} (w={float(weights.values[k]):.2f})")
    ax.plot(grid, total, color="black", lw=1.5, ls="--", label="mixture")
    if show_uncertainty:
        worst = least_certain(result)
        worst = worst[np.isfinite(x[worst])]
        if worst.size:
            assigned = result.responsibilities.values[worst].argmax(axis=1)
            at = np.full(worst.size, 0.03)  # just above the x axis, in axes units
            ax.plot(x[worst], at, transform=ax.get_xaxis_transform(), ls="none", marker="|",
                    ms=14, mew=1.5,
                    color="black", label=f"{worst.size} least certain")
            ax.scatter(x[worst], at, transform=ax.get_xaxis_transform(), s=12, zorder=3,
                       color=[colors[a] for a in assigned])
    ax.set_xlabel(result.feature_names[0])
    ax.set_ylabel("density")
    ax.set_title(f"{result.method.upper()} fit, K={result.n_components}: weighted component "
                 "densities over the histogram")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_posterior_ellipses(result, reference=None, ax=None, *, n_draws: int = 40,
                            dims: tuple[int, int] = (0, 1), projection: str = "auto",
                            random_state: int = 0):
    """A spaghetti of posterior covariance ellipses, over the EM ellipses.

    Parameters
    ----------
    result : GMMResult
        A Bayesian fit (parameters with ``chain`` and ``draw``).
    reference : GMMResult, optional
        An EM fit of the same K drawn in black, components matched.
    ax : matplotlib Axes, optional
        Where to draw.
    n_draws : int, default=40
        Posterior draws shown per component.
    dims : tuple of int, default=(0, 1)
        Features on the axes (``projection="features"``).
    projection : {"auto", "features", "pca"}, default="auto"
        As in :func:`plot_clusters`: for D > 2 the first two principal axes of
        the standardised data, so both plots show the same plane.
    random_state : int, default=0
        Which draws are shown.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not result.is_bayesian:
        raise ValueError("plot_posterior_ellipses needs a Bayesian fit (BayesGMM).")
    n_draws = validate_int(n_draws, "n_draws")
    if result.n_features < 2:
        raise ValueError("plot_posterior_ellipses needs at least 2 features; "
                         "plot_clusters draws 1-D fits.")
    ax = _axes(ax)
    data, incomplete = (plotted_data(result) if result.observed is not None
                        else (None, np.zeros(0, dtype=bool)))
    basis, offset, labels = _projection(result, dims, projection, data)
    means = result.means.stack(sample=("chain", "draw")).transpose("sample", ...).values
    covs = result.covariances.stack(sample=("chain", "draw")).transpose("sample", ...).values
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(means.shape[0], size=min(n_draws, means.shape[0]), replace=False)
    colors = _colors(result.n_components)
    if data is not None:
        points = data @ basis - offset
        ax.scatter(points[~incomplete, 0], points[~incomplete, 1], s=8, color="0.6",
                   linewidths=0)
        if incomplete.any():
            ax.scatter(points[incomplete, 0], points[incomplete, 1], s=10, facecolors="none",
                       edgecolors="0.5", linewidths=0.8,
                       label=_imputed_label(int(incomplete.sum())))
    for k in range(result.n_components):
        for s in chosen:
            path = _ellipse_path(means[s, k] @ basis - offset, basis.T @ covs[s, k] @ basis)
            ax.plot(path[:, 0], path[:, 1], color=colors[k], alpha=0.15, lw=1)
    if reference is not None:
        from bayesgmm.bayes.relabel import match_components

        _, ref_means, ref_covs = reference.point_estimate()
        _, post_means, post_covs = result.point_estimate()
        perm = match_components(ref_means.values, ref_covs.values, post_means.values,
                                post_covs.values)
        for k in range(result.n_components):
            r = perm[k]
            path = _ellipse_path(ref_means.values[r] @ basis - offset,
                                 basis.T @ ref_covs.values[r] @ basis)
            ax.plot(path[:, 0], path[:, 1], color="black", lw=2,
                    label="EM" if k == 0 else None)
    if reference is not None or incomplete.any():
        ax.legend(frameon=False, fontsize="small")
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"{len(chosen)} posterior draws of each component's 95% ellipse")
    return ax


def _ecdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values)
    return x, np.arange(1, x.size + 1) / x.size


def plot_ppc(result: GMMResult, X: Any = None, ax=None, *, kind: str = "ecdf",
             n_replicates: int = 50, random_state: Any = 0) -> np.ndarray:
    """Posterior predictive check: observed data against replicated data sets, per feature.

    Each panel draws, for one feature, the distribution of the data (black)
    over those of ``n_replicates`` data sets of the same size simulated from
    posterior draws (:meth:`GMMResult.posterior_predictive`, light lines). A
    model that fits puts the black curve inside the band of light ones.

    Parameters
    ----------
    result : GMMResult
        A Bayesian fit.
    X : array-like of shape (n_samples, n_features), optional
        The observed data; by default the data the fit kept.
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per feature; by default a new figure with a grid of at most
        three panels per row.
    kind : {"ecdf", "kde"}, default="ecdf"
        Empirical cumulative distribution functions (no smoothing choice;
        they suit rounded data), or Gaussian kernel density estimates.
    n_replicates : int, default=50
        Replicated data sets drawn, from posterior draws evenly spaced
        through each chain.
    random_state : int, Generator or None, default=0
        Seed of the simulation.

    Returns
    -------
    ndarray of matplotlib Axes, shape (n_features,)

    Examples
    --------
    >>> import bayesgmm as bg
    >>> fit = bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_
    >>> try:  # an EM fit has no posterior draws to replicate the data from
    ...     plot_ppc(fit)
    ... except ValueError as err:
    ...     print("method='em'" in str(err))
    True
    """
    kind = validate_choice(kind, "kind", ("ecdf", "kde"))
    n_replicates = validate_int(n_replicates, "n_replicates")
    observed = result.observed if X is None else X
    if observed is None:
        raise ValueError("X: this result kept no data; pass the observed data.")
    observed = np.asarray(getattr(observed, "values", observed), dtype=float)
    if observed.ndim == 1:
        observed = observed[:, None]
    if observed.shape[1] != result.n_features:
        raise ValueError(f"X has {observed.shape[1]} feature(s), but the fit has "
                         f"{result.n_features}: {result.feature_names}.")
    n_chain = result.weights.sizes["chain"] if result.is_bayesian else 1
    per_chain = -(-n_replicates // n_chain)
    reps = result.posterior_predictive(n=observed.shape[0], draws=per_chain,
                                       random_state=random_state)
    reps = reps.stack(sample=("chain", "draw")).transpose("sample", "obs", "feature").values
    reps = reps[:n_replicates]
    import matplotlib.pyplot as plt

    d = result.n_features
    if ax is None:
        ncols = min(d, 3)
        nrows = -(-d // ncols)
        fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows),
                                 squeeze=False)
        for extra in grid.flat[d:]:
            extra.set_visible(False)
        axes = grid.flat[:d]
    else:
        axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
        if axes.size != d:
            raise ValueError(f"ax: pass {d} Axes (one per feature), got {axes.size}.")
        fig = axes[0].figure
    axes = np.asarray(list(axes), dtype=object)
    ok = np.isfinite(observed)
    for j, (panel, name) in enumerate(zip(axes, result.feature_names, strict=True)):
        data = observed[ok[:, j], j]
        if kind == "ecdf":
            for rep in reps:
                panel.step(*_ecdf(rep[:, j]), where="post", color="C0", alpha=0.15, lw=0.8)
            panel.step(*_ecdf(data), where="post", color="black", lw=1.8)
            panel.set_ylabel("cumulative probability")
        else:
            from scipy import stats

            lo = min(data.min(), reps[:, :, j].min())
            hi = max(data.max(), reps[:, :, j].max())
            grid_x = np.linspace(lo, hi, 256)
            for rep in reps:
                panel.plot(grid_x, stats.gaussian_kde(rep[:, j])(grid_x), color="C0",
                           alpha=0.15, lw=0.8)
            panel.plot(grid_x, stats.gaussian_kde(data)(grid_x), color="black", lw=1.8)
            panel.set_ylabel("density")
        panel.set_xlabel(name)
    axes[0].plot([], [], color="black", lw=1.8, label="observed")
    axes[0].plot([], [], color="C0", alpha=0.5, lw=0.8, label=f"{len(reps)} replicated")
    axes[0].legend(frameon=False, fontsize="small", loc="best")
    fig.suptitle(f"Posterior predictive check, {result.method.upper()} K="
                 f"{result.n_components}: observed (black) vs replicated data")
    fig.tight_layout()
    return axes


def plot_responsibilities(result, ax=None, *, n_points: int = 20, prob: float = 0.94):
    """Responsibilities of the least certain points, with credible intervals.

    Parameters
    ----------
    result : GMMResult
        Any fit; Bayesian fits add the ``prob`` credible interval per point.
    ax : matplotlib Axes, optional
        Where to draw.
    n_points : int, default=20
        How many of the least certain points to show.
    prob : float, default=0.94
        Mass of the intervals.

    Returns
    -------
    matplotlib.axes.Axes
    """
    n_points = validate_int(n_points, "n_points")
    prob = validate_prob(prob)
    ax = _axes(ax)
    resp = result.responsibilities.values
    assigned = resp.argmax(axis=1)
    top = resp.max(axis=1)
    order = np.argsort(top)[:n_points]
    colors = np.array(_colors(result.n_components))
    y = np.arange(len(order))
    ax.scatter(top[order], y, c=colors[assigned[order]], zorder=3, s=30)
    if result.is_bayesian and result.idata is not None:
        interval = result.responsibility_interval(prob).values  # (obs, component, 2)
        low = interval[order, assigned[order], 0]
        high = interval[order, assigned[order], 1]
        ax.hlines(y, low, high, colors=colors[assigned[order]], lw=2, alpha=0.7)
    ax.axvline(0.5, color="0.5", ls=":", lw=1)
    ax.set_yticks(y, [str(v) for v in result.responsibilities["obs"].values[order]])
    ax.set_xlim(0, 1.02)
    ax.invert_yaxis()  # least certain on top
    ax.set_xlabel("probability of the assigned component")
    ax.set_ylabel("observation")
    what = f" with {prob:.0%} intervals" if result.is_bayesian else ""
    ax.set_title(f"The {len(order)} least certain assignments{what}")
    return ax


def plot_criteria(comparison, ax=None, *, methods: Any = None, criteria: Any = None):
    """Information criteria against K; WAIC and LOO on the deviance scale with error bars.

    AIC, BIC and ICL are drawn as they are (lower is better); WAIC and LOO as
    ``-2 elpd`` with ``2 se`` error bars, so every curve reads the same way.
    The K each criterion picks is marked with a star.

    Parameters
    ----------
    comparison : Comparison
        From :func:`bayesgmm.compare_k`.
    ax : matplotlib Axes, optional
        Where to draw.
    methods : list of str, optional
        Methods to show (all by default).
    criteria : list of str, optional
        Criteria to show. By default AIC, BIC and ICL for EM and WAIC and
        LOO for Bayesian fits (their AIC/BIC at the posterior mean stay in the
        table).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    table = comparison.table
    methods = methods or list(dict.fromkeys(table.index.get_level_values("method")))
    styles = {"em": "-", "advi": "--", "fullrank_advi": "-.", "nuts": ":"}
    colors = dict(zip(("aic", "bic", "icl", "waic", "loo"), _colors(5), strict=True))
    for method in methods:
        rows = table.loc[method]
        ks = rows.index.to_numpy()
        shown = criteria or (("aic", "bic", "icl") if method == "em" else ("waic", "loo"))
        for name in shown:
            if name in ("waic", "loo"):
                values = -2 * rows[f"elpd_{name}"].to_numpy(dtype=float)
                errors = 2 * rows[f"se_{name}"].to_numpy(dtype=float)
            else:
                values, errors = rows[name].to_numpy(dtype=float), None
            if np.all(np.isnan(values)):
                continue
            label = f"{name.upper()} ({method})"
            ax.errorbar(ks, values, yerr=errors, color=colors[name], ls=styles.get(method, "-"),
                        marker="o", ms=4, capsize=3, label=label)
            best = comparison.best(name, method=method)
            if best is not None:
                ax.plot(best, values[list(ks).index(best)], marker="*", ms=16,
                        color=colors[name], mec="black")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel("criterion (lower is better)")
    ax.annotate("WAIC and LOO as -2 elpd, bars ±2 se; stars mark each choice",
                xy=(0.01, 0.01), xycoords="axes fraction", fontsize="x-small", color="0.4")
    ax.set_title("Choosing K")
    ax.legend(frameon=False, fontsize="small", ncol=2)
    return ax


def plot_model_bic(comparison, ax=None, *, method: str = "em", criterion: str = "bic"):
    """BIC against K with one line per covariance model, as mclust draws it.

    Drawn on mclust's scale, ``-BIC`` (higher is better), so it reads as
    mclust's ``plot(Mclust(...), what = "BIC")``; fits whose status is not
    "ok" are drawn as open markers and the pick (:meth:`Comparison.best`) is
    starred.

    Parameters
    ----------
    comparison : Comparison
        From :func:`bayesgmm.compare_k` with ``covariance_type="all"`` or a list
        (a table with a ``model`` level).
    ax : matplotlib Axes, optional
        Where to draw.
    method : str, default="em"
        Whose rows to draw.
    criterion : {"bic", "aic", "icl"}, default="bic"
        The criterion on the vertical axis (negated).

    Returns
    -------
    matplotlib.axes.Axes
    """
    table = comparison.table
    if "model" not in table.index.names:
        raise ValueError("plot_model_bic needs a comparison of several covariance models: "
                         "compare_k(..., covariance_type='all' or a list).")
    if criterion not in ("aic", "bic", "icl"):
        raise ValueError(f"criterion must be one of ['aic', 'bic', 'icl'], got {criterion!r}.")
    if method not in table.index.get_level_values("method"):
        raise ValueError(f"method {method!r} is not in the comparison; it has "
                         f"{sorted(set(table.index.get_level_values('method')))}.")
    ax = _axes(ax)
    rows = table.loc[method]
    models = list(dict.fromkeys(rows.index.get_level_values("model")))
    from bayesgmm._constants import MCLUST_MODELS

    order = {m: i for i, m in enumerate(MCLUST_MODELS)}  # mclust's order, then the others
    models.sort(key=lambda m: order.get(m, len(order)))
    colors = _colors(len(models))
    markers = "os^vD<>phX*P8dH"
    for i, model in enumerate(models):
        part = rows.loc[model]
        ks = part.index.to_numpy()
        values = -part[criterion].to_numpy(dtype=float)
        ok = (part["status"] == "ok").to_numpy()
        marker = markers[i % len(markers)]
        ax.plot(ks, values, color=colors[i], lw=1, marker=marker, ms=5, label=model)
        ax.plot(ks[~ok], values[~ok], ls="", marker=marker, ms=5, mfc="white", color=colors[i])
    best = comparison.best(criterion, method=method)
    if best is not None:
        value = -float(rows.loc[(best.model, best.K), criterion])
        ax.plot(best.K, value, marker="*", ms=16, color="gold", mec="black", ls="")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"-{criterion.upper()} (mclust's sign: higher is better)")
    ax.set_title(f"{criterion.upper()} by covariance model"
                 + (f": {best.model}, K={best.K}" if best is not None else ""))
    ax.annotate("open markers: fits that fail their checks", xy=(0.01, 0.01),
                xycoords="axes fraction", fontsize="x-small", color="0.4")
    ax.legend(frameon=False, fontsize="small", ncol=2)
    return ax


def _relabeled_tree(result):
    if not result.is_bayesian or result.idata is None:
        raise ValueError("trace and rank plots need a Bayesian fit (BayesGMM).")
    return result.idata


def _arviz_plot(function_name: str, result, var_names, **kwargs):
    import arviz_plots as azp

    function = getattr(azp, function_name)
    return function(_relabeled_tree(result), var_names=list(var_names), backend="matplotlib",
                    **kwargs)


def plot_trace(result, var_names=("weights", "means"), **kwargs):
    """Trace and distribution of relabeled parameters (``arviz_plots.plot_trace_dist``).

    Parameters
    ----------
    result : GMMResult
        A Bayesian fit; its posterior is already relabeled.
    var_names : sequence of str, default=("weights", "means")
        Posterior variables to show.
    **kwargs
        Passed to :func:`arviz_plots.plot_trace_dist`.

    Returns
    -------
    arviz_plots.PlotCollection
    """
    kwargs.setdefault("compact", False)  # one panel per component and feature
    return _arviz_plot("plot_trace_dist", result, var_names, **kwargs)


def plot_rank(result, var_names=("weights", "means"), **kwargs):
    """Rank plots of relabeled parameters (``arviz_plots.plot_rank``).

    Parameters
    ----------
    result : GMMResult
        A Bayesian fit; its posterior is already relabeled.
    var_names : sequence of str, default=("weights", "means")
        Posterior variables to show.
    **kwargs
        Passed to :func:`arviz_plots.plot_rank`.

    Returns
    -------
    arviz_plots.PlotCollection
    """
    return _arviz_plot("plot_rank", result, var_names, **kwargs)


def plot_n_clusters(result, ax=None, *, random_state: int | None = 0):
    """Bar plot of the posterior of the number of non-empty components ``K+``.

    Parameters
    ----------
    result : GMMResult or pandas.Series
        A sparse-mixture fit (its :meth:`GMMResult.n_clusters` is drawn) or
        that Series itself.
    ax : matplotlib Axes, optional
        Where to draw.
    random_state : int or None, default=0
        Seed of the allocations (a fit only).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import pandas as pd

    probs = result if isinstance(result, pd.Series) else result.n_clusters(random_state)
    ax = _axes(ax)
    ks = np.asarray(probs.index, dtype=int)
    bars = ax.bar(ks, probs.to_numpy(), color="C0", width=0.7)
    for bar, p in zip(bars, probs.to_numpy(), strict=True):
        ax.annotate(f"{p:.2f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8)
    ax.set_xticks(ks)
    ax.set_xlabel("number of non-empty components K+")
    ax.set_ylabel("posterior probability")
    k_max = probs.attrs.get("n_components")
    ax.set_title("Posterior of the number of clusters"
                 + (f" (K_max = {k_max})" if k_max else ""))
    return ax
