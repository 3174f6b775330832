"""Every plot renders to PNG, and the pictures are not empty."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

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
