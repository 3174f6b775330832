"""compare_k, compare and the plots with Bayesian fits (one short sweep shared by all)."""

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

import bayesgmm as bg
from bayesgmm import plotting
from bayesgmm.compare import TABLE_COLUMNS

SMALL = {"draws": 1000, "tune": 1000, "chains": 4}  # enough for R-hat < 1.01 and ESS > 400


@pytest.fixture(scope="module")
def sweep(faithful):
    # K=2 full on Old Faithful is the graph test_bayes_fit.py compiles too
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.compare_k(faithful, [1, 2], methods=("em", "advi", "nuts"),
                            progressbar=False, bayes_kwargs=SMALL)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_table_is_complete_for_every_method(sweep):
    table = sweep.table
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert set(table.index) == {(m, k) for m in ("em", "advi", "nuts") for k in (1, 2)}
    bayes = table.drop(index="em")
    for column in ("loglik", "aic", "bic", "icl", "elpd_waic", "se_waic", "p_waic",
                   "elpd_loo", "se_loo", "p_loo", "rank", "elpd_diff", "dse", "weight",
                   "pareto_k_max"):
        assert bayes[column].notna().all(), column
    assert table.loc["em", "elpd_loo"].isna().all()
    assert table.loc["nuts", "r_hat_max"].notna().all()
    assert table.loc["nuts", "divergences"].notna().all()
    # stacking weights of each method sum to one; the best model has elpd_diff 0
    for method in ("advi", "nuts"):
        assert table.loc[method, "weight"].sum() == pytest.approx(1.0, abs=1e-6)
        assert table.loc[method, "elpd_diff"].max() == pytest.approx(0.0, abs=1e-9)


def test_every_criterion_picks_two_components(sweep):
    for criterion in ("aic", "bic", "icl", "waic", "loo"):
        assert sweep.best(criterion) == 2, criterion
    assert sweep.best("loo", method="advi") == 2
    text = sweep.verdict()
    for name in ("AIC (em)", "BIC (em)", "ICL (em)", "WAIC (nuts)", "LOO (nuts)"):
        assert name in text
    assert "K=2" in text


def test_bayesian_criteria_at_the_posterior_mean_are_close_to_em(sweep):
    em_ll = sweep.table.loc[("em", 2), "loglik"]
    # the posterior mean is not the maximum: its likelihood is lower, but within a few nats
    assert em_ll - 10 < sweep.table.loc[("nuts", 2), "loglik"] <= em_ll + 1e-6


def test_compare_em_with_nuts(sweep):
    em, nuts = sweep.results[("em", 2)], sweep.results[("nuts", 2)]
    out = bg.compare([em, nuts])
    assert {"em", "nuts_mean", "nuts_lower", "nuts_upper", "em_in_nuts_interval"} <= set(
        out.components.columns)
    # EM and the posterior agree on Old Faithful: the EM means lie in the 94% intervals
    means = out.components[out.components.index.get_level_values("parameter").str.startswith(
        "mean")]
    assert means["em_in_nuts_interval"].all()
    assert out.agreement.loc[("em", "nuts"), "adjusted_rand"] > 0.95


def _inked(ax):
    fig = ax.figure if hasattr(ax, "figure") else plt.gcf()
    fig.canvas.draw()
    image = np.asarray(fig.canvas.buffer_rgba())[..., :3] / 255
    return float(np.mean(image.min(axis=2) < 0.9))


def test_posterior_ellipses_over_em(sweep):
    ax = plotting.plot_posterior_ellipses(sweep.results[("nuts", 2)], sweep.results[("em", 2)],
                                          n_draws=20)
    assert len(ax.lines) == 2 * 20 + 2
    assert _inked(ax) > 0.03


def test_responsibility_intervals_are_drawn(sweep):
    ax = plotting.plot_responsibilities(sweep.results[("nuts", 2)], n_points=8)
    assert len(ax.collections) == 2  # points and interval lines
    assert "94% intervals" in ax.get_title()


def test_criteria_plot_has_error_bars_for_waic_and_loo(sweep):
    ax = sweep.plot()
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "LOO (nuts)" in labels and "WAIC (advi)" in labels and "BIC (em)" in labels
    assert "BIC (nuts)" not in labels
    assert _inked(ax) > 0.03


@pytest.mark.parametrize("kind", ["trace", "rank"])
def test_trace_and_rank_plots_of_relabeled_draws(sweep, kind, tmp_path):
    collection = getattr(plotting, f"plot_{kind}")(sweep.results[("nuts", 2)])
    path = tmp_path / f"{kind}.png"
    collection.savefig(path)
    image = plt.imread(path)
    assert float(np.mean(image[..., :3].min(axis=2) < 0.9)) > 0.02


def test_report_with_bayesian_fits(sweep, tmp_path):
    path = bg.report(sweep, tmp_path / "report.html")
    page = path.read_text()
    assert "No-U-Turn sampler" in page and "relabelled to the EM solution" in page
    assert page.count("data:image/png;base64") >= 6


@pytest.fixture(scope="module")
def faithful_em_advi(faithful):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bg.compare_k(faithful, range(1, 6), methods=("em", "advi"), progressbar=False,
                            bayes_kwargs={"draws": 300})


def test_faithful_em_and_advi_over_k_1_to_5(faithful_em_advi):
    table = faithful_em_advi.table
    assert len(table) == 10
    assert table[["loglik", "n_params", "aic", "bic", "icl"]].notna().all().all()
    advi = table.loc["advi"]
    assert advi[["elpd_waic", "se_waic", "p_waic", "elpd_loo", "se_loo", "p_loo", "rank",
                 "elpd_diff", "dse", "weight", "pareto_k_max"]].notna().all().all()
    text = faithful_em_advi.verdict()
    for criterion in ("AIC", "BIC", "ICL", "WAIC", "LOO"):
        k = faithful_em_advi.best(criterion.lower())
        assert f"{criterion} (" in text and f"K={k}" in text
    assert faithful_em_advi.best("bic") == 2


def test_table_elpd_columns_follow_the_textbook_formulas(sweep):
    # Independent of ArviZ and of bayesgmm.posterior: from the pointwise log-likelihood
    # ll[s, i] of the S posterior draws, WAIC (Watanabe 2010; Vehtari, Gelman and Gabry
    # 2017, eqs. 3-5 and 23) and importance-sampling LOO (Gelfand 1996):
    #   elpd_waic = sum_i [log mean_s exp ll - var_s ll],   se = sqrt(n var_i(elpd_i))
    #   elpd_is-loo_i = -log mean_s exp(-ll[s, i])
    from scipy.special import logsumexp

    from bayesgmm.posterior import LOG_LIK_VAR

    result = sweep.results[("nuts", 2)]
    row = sweep.table.loc[("nuts", 2)]
    ll = result.idata["log_likelihood"][LOG_LIK_VAR].transpose("chain", "draw", "obs").values
    ll = ll.reshape(-1, ll.shape[-1])
    s, n = ll.shape
    lppd = logsumexp(ll, axis=0) - np.log(s)
    p_waic = np.var(ll, axis=0, ddof=1)
    # the same arithmetic in another order: rounding error only
    assert row["elpd_waic"] == pytest.approx(np.sum(lppd - p_waic), rel=1e-10)
    assert row["p_waic"] == pytest.approx(p_waic.sum(), rel=1e-10)
    # Vehtari et al. take the sample variance (n - 1); bayesgmm.posterior.waic divides by n,
    # a relative difference of 1/(2n): allowed, nothing more
    assert row["se_waic"] == pytest.approx(np.sqrt(n * np.var(lppd - p_waic, ddof=1)),
                                           rel=1 / n)
    # PSIS smooths only the largest importance weights; with every Pareto k < 0.5 the raw
    # weights have finite variance and the two estimates differ by Monte Carlo error only
    # (0.002 per point and 0.02 in total on this fit). The in-sample lppd is p_loo ~ 11
    # nats above, so a LOO that were not leave-one-out would fail.
    assert row["pareto_k_max"] < 0.5
    is_loo = np.log(s) - logsumexp(-ll, axis=0)
    assert row["elpd_loo"] == pytest.approx(is_loo.sum(), abs=0.2)
    assert row["p_loo"] == pytest.approx(lppd.sum() - is_loo.sum(), abs=0.2)
    assert row["se_loo"] == pytest.approx(np.sqrt(n * np.var(is_loo, ddof=1)), rel=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pointwise = np.asarray(result.loo().elpd_i).ravel()
    np.testing.assert_allclose(pointwise, is_loo, atol=0.01)
