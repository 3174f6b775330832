"""Every plot renders to PNG, and the pictures are not empty."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import with_holes

import bayesgmm as bg
from bayesgmm import plotting


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def em_faithful():
    return bg.EMGMM(2, random_state=0).fit(bg.datasets.load_faithful()).result_


def _png_pixels(ax, tmp_path):
    path = tmp_path / "plot.png"
    ax.figure.savefig(path, dpi=60)
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100
    return image


def _inked(image):
    """Fraction of pixels that are not (near) white."""
    return float(np.mean(image[..., :3].min(axis=2) < 0.9))


def test_clusters_plot_draws_points_and_ellipses(em_faithful, tmp_path):
    ax = em_faithful.plot()
    image = _png_pixels(ax, tmp_path)
    # 272 points, two ellipses, axes and labels: a few percent of the canvas is ink
    assert 0.02 < _inked(image) < 0.6
    assert len(ax.lines) >= 2 * em_faithful.n_components  # ellipse + centre per component
    blue = image[..., 2] - image[..., 0]
    orange = image[..., 0] - image[..., 2]
    assert (blue > 0.3).mean() > 0.001 and (orange > 0.3).mean() > 0.001  # both colours show


def test_clusters_plot_projects_higher_dimensions(iris, tmp_path):
    r = bg.EMGMM(3, random_state=0).fit(iris).result_
    for projection in ("pca", "features"):
        ax = r.plot(projection=projection)
        assert _inked(_png_pixels(ax, tmp_path)) > 0.02
    assert ax.get_xlabel() == "sepal_length"


def test_one_dimensional_fit_plots_densities(faithful, tmp_path):
    r = bg.EMGMM(2, random_state=0).fit(faithful[["waiting"]]).result_
    ax = r.plot()
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02
    assert ax.get_ylabel() == "density"


def test_responsibility_plot_lists_least_certain(em_faithful, tmp_path):
    ax = plotting.plot_responsibilities(em_faithful, n_points=10)
    _png_pixels(ax, tmp_path)
    shown = [int(t.get_text()) for t in ax.get_yticklabels()]
    table = em_faithful.assignment_uncertainty().sort_values("probability")
    assert shown == table.index[:10].tolist()


def test_criteria_plot_marks_choices(iris, tmp_path):
    cmp = bg.compare_k(iris, range(1, 5), methods="em", progressbar=False)
    _, ax = plt.subplots()
    assert cmp.plot(ax=ax) is ax
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["AIC (em)", "BIC (em)", "ICL (em)"]


def test_posterior_plots_refuse_em_fits(em_faithful):
    with pytest.raises(ValueError, match="Bayesian fit"):
        plotting.plot_posterior_ellipses(em_faithful)
    with pytest.raises(ValueError, match="Bayesian fit"):
        plotting.plot_trace(em_faithful)


# --------------------------------------------------------------------------
# more than two features: a PCA projection labelled with explained variance
# --------------------------------------------------------------------------


def _sklearn_pca(X):
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(X)
    pca = PCA(2).fit(scaler.transform(X))
    return pca, lambda Z: pca.transform(scaler.transform(np.atleast_2d(Z)))


def test_more_than_two_features_plot_pca_with_explained_variance(iris, tmp_path):
    r = bg.EMGMM(3, random_state=0).fit(iris).result_
    ax = r.plot()  # the report's call: no projection given
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02
    pca, transform = _sklearn_pca(iris.to_numpy())
    for label, ratio, i in ((ax.get_xlabel(), pca.explained_variance_ratio_[0], 1),
                            (ax.get_ylabel(), pca.explained_variance_ratio_[1], 2)):
        assert label == f"PC{i} ({100 * ratio:.1f}% of standardised variance)"
    assert "principal axes" in ax.get_title()
    # the points are sklearn's PCA scores up to a shift and the sign of each axis
    shown = ax.collections[0].get_offsets()
    scores = transform(iris.to_numpy())
    signs = np.sign(np.sum((shown - shown.mean(0)) * scores, axis=0))
    shift = shown - scores * signs
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-9)
    # each component's centre is its mean, projected the same way
    centres = [line.get_xydata()[0] for line in ax.lines if line.get_marker() == "x"]
    expected = transform(r.means.values) * signs + shift[0]
    np.testing.assert_allclose(np.array(centres), expected, atol=1e-9)


def test_features_projection_still_available_for_many_features(iris):
    r = bg.EMGMM(2, random_state=0).fit(iris).result_
    ax = r.plot(projection="features", dims=(2, 3))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("petal_length", "petal_width")
    with pytest.raises(ValueError, match="projection must be"):
        r.plot(projection="tsne")


def test_two_features_keep_their_names_by_default(em_faithful):
    ax = em_faithful.plot()
    assert (ax.get_xlabel(), ax.get_ylabel()) == tuple(em_faithful.feature_names)


def _fake_bayes(result, n_chain=2, n_draw=30, seed=0):
    """An EM result dressed as posterior draws (small noise), for plotting only."""
    import xarray as xr

    rng = np.random.default_rng(seed)

    def draws(array, scale):
        values = array.values[None, None] + scale * rng.normal(
            size=(n_chain, n_draw, *array.shape))
        return xr.DataArray(values, dims=("chain", "draw", *array.dims),
                            coords=array.coords)

    covs = draws(result.covariances, 0.0)
    return bg.GMMResult(weights=draws(result.weights, 0.0), means=draws(result.means, 0.05),
                        covariances=covs, responsibilities=result.responsibilities,
                        log_likelihood=result.log_likelihood,
                        covariance_type=result.covariance_type, method="nuts",
                        data=result.data)


def test_posterior_ellipses_use_the_same_pca_plane(iris):
    em = bg.EMGMM(3, random_state=0).fit(iris).result_
    fake = _fake_bayes(em)
    ax = plotting.plot_posterior_ellipses(fake, em, n_draws=5)
    assert ax.get_xlabel() == em.plot().get_xlabel()
    assert ax.get_xlabel().startswith("PC1 (")
    _, transform = _sklearn_pca(iris.to_numpy())
    # the black EM ellipses are centred on the projected EM means (up to shift and sign)
    black = [line.get_xydata()[:-1].mean(axis=0) for line in ax.lines
             if line.get_color() == "black"]
    expected = transform(em.means.values)
    assert len(black) == 3
    shown = ax.collections[0].get_offsets()
    scores = transform(iris.to_numpy())
    signs = np.sign(np.sum((shown - shown.mean(0)) * scores, axis=0))
    shift = (shown - scores * signs)[0]
    np.testing.assert_allclose(np.array(black), expected * signs + shift, atol=1e-6)


# --------------------------------------------------------------------------
# uncertain points: a few dozen rings at most
# --------------------------------------------------------------------------


def _ringed(ax):
    rings = [c for c in ax.collections if c.get_label().endswith("least certain")]
    return rings[0].get_offsets() if rings else np.empty((0, 2))


def test_large_n_rings_at_most_a_few_dozen_points(tmp_path):
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, (10_000, 2)), rng.normal(2.5, 1, (10_000, 2))]
    r = bg.EMGMM(2, random_state=0, n_init=1).fit(X).result_
    ax = r.plot()
    ringed = _ringed(ax)
    assert len(ringed) == plotting.MAX_RINGED == 30
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "30 least certain" in labels
    # they are the 30 least certain points
    prob = r.responsibilities.values.max(axis=1)
    worst = np.argsort(prob)[:30]
    np.testing.assert_allclose(np.sort(ringed[:, 0]), np.sort(X[worst, 0]))
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02


def test_only_uncertain_points_are_ringed_and_certain_fits_ring_nothing(em_faithful, faithful):
    prob = em_faithful.responsibilities.values.max(axis=1)
    ringed = _ringed(em_faithful.plot())
    assert len(ringed) == min(np.sum(prob < 0.99), 14) == 2  # 14 = 5% of 272
    np.testing.assert_allclose(np.sort(ringed[:, 1]),
                               np.sort(faithful["waiting"].to_numpy()[prob < 0.99]))
    plt.close("all")
    one = bg.EMGMM(1, random_state=0).fit(faithful).result_  # every probability is 1
    ax = one.plot()
    assert len(_ringed(ax)) == 0
    assert plotting.least_certain(one).size == 0


def test_one_dimensional_plot_has_a_one_dimensional_title_and_rug(faithful, tmp_path):
    r = bg.EMGMM(2, random_state=0).fit(faithful[["waiting"]]).result_
    ax = r.plot()
    assert "ellipse" not in ax.get_title() and "densities" in ax.get_title()
    rug = [line for line in ax.lines if line.get_marker() == "|"]
    assert len(rug) == 1
    x = rug[0].get_xdata()
    assert 1 <= len(x) <= plotting.MAX_RINGED
    # the rug marks the least certain points: at most 5% of the rows (14 of 272), and
    # only those whose assigned component has probability below 0.99
    prob = r.responsibilities.values.max(axis=1)
    worst = np.argsort(prob, kind="stable")[:14]
    worst = worst[prob[worst] < 0.99]
    assert len(x) == len(worst)
    np.testing.assert_allclose(np.sort(x), np.sort(faithful["waiting"].to_numpy()[worst]))
    table = r.assignment_uncertainty().sort_values("probability", kind="stable")
    assert table["probability"].iloc[0] == pytest.approx(prob.min())
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02


def test_opacity_follows_the_probability_not_its_range(iris, em_faithful):
    # iris, K=2: every point is at least 99.9% certain, so none may be faded
    r = bg.EMGMM(2, random_state=0, n_init=10).fit(iris).result_
    prob = r.responsibilities.values.max(axis=1)
    assert prob.min() > 0.999
    alpha = r.plot().collections[0].get_facecolors()[:, 3]
    assert alpha.min() > 0.99
    # a coin toss between two components is faded to 0.15, certainty is opaque
    prob = em_faithful.responsibilities.values.max(axis=1)
    alpha = em_faithful.plot().collections[0].get_facecolors()[:, 3]
    np.testing.assert_allclose(alpha, 0.15 + 0.85 * (prob - 0.5) / 0.5, atol=1e-12)


def test_pca_scores_are_centred(iris):
    ax = bg.EMGMM(3, random_state=0).fit(iris).result_.plot()
    np.testing.assert_allclose(ax.collections[0].get_offsets().mean(axis=0), 0, atol=1e-9)


# --------------------------------------------------------------------------
# missing values: incomplete rows drawn at their imputed values, hollow
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def em_faithful_holes():
    X = with_holes(bg.datasets.load_faithful().to_numpy(), 0.1)
    return bg.EMGMM(2, random_state=0).fit(X).result_


@pytest.fixture(scope="module")
def em_iris_holes():
    X = with_holes(bg.datasets.load_iris().to_numpy(), 0.15, seed=1)
    return bg.EMGMM(3, random_state=0).fit(X).result_


def _imputed(ax):
    """(the hollow data points, the legend labels) of a cluster plot."""
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    hollow = [c for c in ax.collections if len(c.get_offsets())
              and len(c.get_facecolors()) == 0 and not c.get_label().endswith("least certain")]
    return hollow, labels


def test_plotted_data_fills_missing_entries_with_impute(em_faithful_holes):
    data, incomplete = plotting.plotted_data(em_faithful_holes)
    observed = em_faithful_holes.observed.values
    np.testing.assert_array_equal(incomplete, np.isnan(observed).any(axis=1))
    np.testing.assert_allclose(data, em_faithful_holes.impute().values)
    np.testing.assert_array_equal(data[~np.isnan(observed)], observed[~np.isnan(observed)])
    full, none = plotting.plotted_data(bg.EMGMM(2, random_state=0).fit(
        bg.datasets.load_faithful()).result_)
    assert not none.any() and np.isfinite(full).all()


def test_incomplete_rows_are_hollow_at_their_imputed_values(em_faithful_holes, tmp_path):
    r = em_faithful_holes
    observed = r.observed.values
    incomplete = np.isnan(observed).any(axis=1)
    ax = r.plot()
    hollow, labels = _imputed(ax)
    assert f"imputed ({incomplete.sum()} rows)" in labels
    assert len(hollow) == 1
    np.testing.assert_allclose(hollow[0].get_offsets(), r.impute().values[incomplete])
    # complete rows: filled dots at their own values, as before
    filled = ax.collections[0]
    assert len(filled.get_facecolors()) == (~incomplete).sum()
    np.testing.assert_allclose(filled.get_offsets(), observed[~incomplete])
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02


def test_complete_data_have_no_imputed_entry(em_faithful):
    labels = [t.get_text() for t in em_faithful.plot().get_legend().get_texts()]
    assert not any(label.startswith("imputed") for label in labels)


def test_pca_projection_of_incomplete_data_uses_the_completed_data(em_iris_holes, tmp_path):
    r = em_iris_holes
    incomplete = np.isnan(r.observed.values).any(axis=1)
    ax = r.plot()
    assert ax.get_xlabel().startswith("PC1 (")
    hollow, labels = _imputed(ax)
    assert f"imputed ({incomplete.sum()} rows)" in labels
    completed = r.impute().values
    basis, _ = plotting.pca_projection(completed)
    expected = completed @ basis - completed.mean(axis=0) @ basis
    np.testing.assert_allclose(hollow[0].get_offsets(), expected[incomplete])
    np.testing.assert_allclose(ax.collections[0].get_offsets(), expected[~incomplete])
    assert np.isfinite(ax.collections[0].get_offsets()).all()
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02
    ax = r.plot(projection="features", dims=(2, 3))
    np.testing.assert_allclose(_imputed(ax)[0][0].get_offsets(), completed[incomplete][:, 2:])


def test_pca_projection_refuses_nan_with_a_hint():
    with pytest.raises(ValueError, match="impute"):
        plotting.pca_projection(np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 0.0]]))


def test_every_plot_of_incomplete_data_draws(em_iris_holes, tmp_path):
    r = em_iris_holes
    ax = plotting.plot_responsibilities(r)
    assert _inked(_png_pixels(ax, tmp_path)) > 0.01
    X = with_holes(bg.datasets.load_iris().to_numpy(), 0.15, seed=1)
    cmp = bg.compare_k(X, range(1, 4), methods="em", progressbar=False)
    ax = cmp.plot()
    assert len(ax.lines) > 0 and _inked(_png_pixels(ax, tmp_path)) > 0.01
    fake = _fake_bayes(r)
    ax = plotting.plot_posterior_ellipses(fake, r, n_draws=5)
    incomplete = np.isnan(r.observed.values).any(axis=1)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert f"imputed ({incomplete.sum()} rows)" in labels and "EM" in labels
    assert ax.get_xlabel() == r.plot().get_xlabel()
    shown = np.concatenate([c.get_offsets() for c in ax.collections])
    assert len(shown) == len(incomplete) and np.isfinite(shown).all()
    panels = plotting.plot_ppc(fake, n_replicates=5)  # observed ECDFs skip the NaN
    observed = r.observed.values
    for j, panel in enumerate(panels):
        black = [line for line in panel.lines if line.get_color() == "black"
                 and len(line.get_xdata())]
        assert len(black[0].get_xdata()) == np.isfinite(observed[:, j]).sum()


def test_one_dimensional_plot_skips_non_finite_values(faithful, tmp_path):
    r = bg.EMGMM(2, random_state=0).fit(faithful[["waiting"]]).result_
    x = faithful["waiting"].to_numpy(dtype=float).copy()
    x[:5] = np.nan  # a 1-D fit cannot have them; the plot must not break on them either
    ax = plotting._plot_clusters_1d(r, x, plt.subplots()[1])
    assert np.isfinite(ax.get_xlim()).all()
    assert _inked(_png_pixels(ax, tmp_path)) > 0.02
