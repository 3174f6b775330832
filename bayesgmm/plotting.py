"""Plots of fits and comparisons (matplotlib, imported inside each function).

Every function accepts ``ax=`` (or ``fig=`` for grids) and returns what it
drew on, so plots compose into a user's own figures.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bayesgmm._validation import validate_int, validate_prob

__all__ = [
    "plot_clusters",
    "plot_criteria",
    "plot_posterior_ellipses",
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


def _projection(result, dims, projection: str):
    """A (D, 2) matrix mapping features to the plotted plane, and axis labels."""
    names = result.feature_names
    d = result.n_features
    if projection == "pca" and d > 2:
        X = result.observed.values
        centred = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(centred / centred.std(axis=0), full_matrices=False)
        basis = (vt[:2] / centred.std(axis=0)).T
        return basis, ["principal axis 1", "principal axis 2"]
    i, j = dims
    basis = np.zeros((d, 2))
    basis[i, 0] = basis[j, 1] = 1.0
    return basis, [names[i], names[j]]


def plot_clusters(result, ax=None, *, dims: tuple[int, int] = (0, 1),
                  projection: str = "features", show_uncertainty: bool = True):
    """Data coloured by component, with 95% covariance ellipses.

    Points are coloured by their most probable component; their opacity is
    the probability of that assignment, so uncertain points fade and the
    most uncertain are ringed.

    Parameters
    ----------
    result : GMMResult
        A fit that kept its data (every EMGMM/BayesGMM fit does).
    ax : matplotlib Axes, optional
        Where to draw; a new figure by default.
    dims : tuple of int, default=(0, 1)
        Features on the x and y axes (``projection="features"``).
    projection : {"features", "pca"}, default="features"
        For D > 2, "pca" shows the first two principal axes of the
        standardised data, with the ellipses projected onto them.
    show_uncertainty : bool, default=True
        Fade points by assignment probability and ring the 5% least certain.

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    data = result.observed
    if data is None:
        raise ValueError("result has no data to plot; fit with bayesgmm >= 0.1 to keep it.")
    ax = _axes(ax)
    X = data.values
    if result.n_features == 1:
        return _plot_clusters_1d(result, X[:, 0], ax)
    basis, labels = _projection(result, dims, projection)
    points = X @ basis
    resp = result.responsibilities.values
    assigned = resp.argmax(axis=1)
    prob = resp.max(axis=1)
    colors = np.array(_colors(result.n_components))
    rgba = colors[assigned].copy()
    if show_uncertainty:
        rgba[:, 3] = 0.15 + 0.85 * (prob - prob.min()) / max(1e-12, np.ptp(prob))
    ax.scatter(points[:, 0], points[:, 1], c=rgba, s=18, linewidths=0)
    if show_uncertainty and len(prob) > 0:
        worst = np.argsort(prob)[: max(1, len(prob) // 20)]
        ax.scatter(points[worst, 0], points[worst, 1], facecolors="none", edgecolors="black",
                   s=60, linewidths=0.8, label="least certain 5%")
    weights, means, covs = result.point_estimate()
    for k in range(result.n_components):
        m = means.values[k] @ basis
        c = basis.T @ covs.values[k] @ basis
        path = _ellipse_path(m, c)
        ax.plot(path[:, 0], path[:, 1], color=colors[k], lw=2,
                label=f"component {k} (w={float(weights.values[k]):.2f})")
        ax.plot(*m, marker="x", color=colors[k], ms=9, mew=2)
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(f"{result.method.upper()} fit, K={result.n_components}: 95% ellipses")
    ax.legend(loc="best", fontsize="small", frameon=False)
    plt.gcf().tight_layout()
    return ax


def _plot_clusters_1d(result, x: np.ndarray, ax):
    from scipy import stats

    weights, means, covs = result.point_estimate()
    ax.hist(x, bins="auto", density=True, color="0.85", edgecolor="0.6")
    grid = np.linspace(x.min() - 0.1 * np.ptp(x), x.max() + 0.1 * np.ptp(x), 400)
    total = np.zeros_like(grid)
    for k, color in enumerate(_colors(result.n_components)):
        dens = float(weights.values[k]) * stats.norm.pdf(
            grid, means.values[k, 0], np.sqrt(covs.values[k, 0, 0]))
        total += dens
        ax.plot(grid, dens, color=color, lw=2, label=f"component {k}")
    ax.plot(grid, total, color="black", lw=1.5, ls="--", label="mixture")
    ax.set_xlabel(result.feature_names[0])
    ax.set_ylabel("density")
    ax.legend(frameon=False, fontsize="small")
    return ax


def plot_posterior_ellipses(result, reference=None, ax=None, *, n_draws: int = 40,
                            dims: tuple[int, int] = (0, 1), random_state: int = 0):
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
        Features on the axes.
    random_state : int, default=0
        Which draws are shown.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not result.is_bayesian:
        raise ValueError("plot_posterior_ellipses needs a Bayesian fit (BayesGMM).")
    n_draws = validate_int(n_draws, "n_draws")
    ax = _axes(ax)
    i, j = dims
    means = result.means.stack(sample=("chain", "draw")).transpose("sample", ...).values
    covs = result.covariances.stack(sample=("chain", "draw")).transpose("sample", ...).values
    rng = np.random.default_rng(random_state)
    chosen = rng.choice(means.shape[0], size=min(n_draws, means.shape[0]), replace=False)
    colors = _colors(result.n_components)
    data = result.observed
    if data is not None:
        ax.scatter(data.values[:, i], data.values[:, j], s=8, color="0.6", linewidths=0)
    sub = np.ix_([i, j], [i, j])
    for k in range(result.n_components):
        for s in chosen:
            path = _ellipse_path(means[s, k, [i, j]], covs[s, k][sub])
            ax.plot(path[:, 0], path[:, 1], color=colors[k], alpha=0.15, lw=1)
    if reference is not None:
        from bayesgmm.compare import match_components

        perm = match_components(result, reference)
        _, ref_means, ref_covs = reference.point_estimate()
        for k in range(result.n_components):
            r = perm[k]
            path = _ellipse_path(ref_means.values[r, [i, j]], ref_covs.values[r][sub])
            ax.plot(path[:, 0], path[:, 1], color="black", lw=2,
                    label="EM" if k == 0 else None)
        ax.legend(frameon=False, fontsize="small")
    ax.set_xlabel(result.feature_names[i])
    ax.set_ylabel(result.feature_names[j])
    ax.set_title(f"{len(chosen)} posterior draws of each component's 95% ellipse")
    return ax


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
