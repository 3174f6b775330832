"""Simulation-based calibration: the rank/band/chi-square helpers and a slow study."""

import contextlib
import sys
import warnings

import numpy as np
import pytest
from scipy import stats

import bayesgmm as bg
from bayesgmm import validation as val
from bayesgmm._constants import COVARIANCE_TYPES
from bayesgmm.bayes import spec
from bayesgmm.posterior import pointwise_log_likelihood

PRIORS = {"weights_concentration": 5.0, "means_loc": 0.0, "means_scale": 3.0,
          "sd_scale": 1.0, "lkj_eta": 2.0}
N_RANKS = 101  # 100 posterior draws


def _sample_prior(n_components, n_features, priors, reg_covar, size, random_state=None, *,
                  covariance_type="full"):
    """The data-free prior of the SBC study, drawn by the model's specification."""
    md = spec.prior_model_data(n_components, n_features, priors, reg_covar, covariance_type)
    return spec.sample_prior(md, covariance_type, size, random_state)


def _uniform_ranks(n_rep, n_par, seed):
    return np.random.default_rng(seed).integers(0, N_RANKS, size=(n_rep, n_par))


def _beta_ranks(a, b, n_rep, seed):
    """Ranks whose fractional positions follow Beta(a, b): not uniform unless a = b = 1."""
    u = np.random.default_rng(seed).beta(a, b, size=(n_rep, 1))
    return np.minimum((u * N_RANKS).astype(int), N_RANKS - 1)


# ----------------------------------------------------------------------
# ranks
# ----------------------------------------------------------------------


def test_rank_statistic_counts_draws_below():
    draws = np.array([[0.1, 5.0], [0.2, 6.0], [0.9, 7.0]])
    assert val.rank_statistic(np.array([0.15, 10.0]), draws).tolist() == [1, 3]
    assert val.rank_statistic(np.array([-1.0, 0.0]), draws).tolist() == [0, 0]


def test_rank_statistic_splits_ties_at_random():
    draws = np.zeros((4, 1))
    ranks = [int(val.rank_statistic(np.zeros(1), draws, s)[0]) for s in range(200)]
    assert set(ranks) == {0, 1, 2, 3, 4}


def test_ranks_of_exact_posterior_are_uniform():
    # conjugate normal: truth from the prior, draws from the exact posterior
    rng = np.random.default_rng(1)
    ranks = []
    for _ in range(400):
        mu = rng.normal()
        y = rng.normal(mu, 1.0, size=5)
        post_sd = np.sqrt(1 / 6)
        draws = rng.normal(y.sum() / 6, post_sd, size=(N_RANKS - 1, 1))
        ranks.append(val.rank_statistic(np.array([mu]), draws, rng))
    _, p = val.chi_square_uniformity(np.array(ranks), N_RANKS)
    # a fixed seed; the test is exact, so p is a draw of U(0, 1): 1e-3 fails 1 in 1000 seeds
    assert p[0] > 1e-3
    # an over-confident posterior (sd / 2) gives U-shaped ranks, detected
    ranks_bad = []
    for _ in range(400):
        mu = rng.normal()
        y = rng.normal(mu, 1.0, size=5)
        draws = rng.normal(y.sum() / 6, np.sqrt(1 / 6) / 2, size=(N_RANKS - 1, 1))
        ranks_bad.append(val.rank_statistic(np.array([mu]), draws, rng))
    _, p_bad = val.chi_square_uniformity(np.array(ranks_bad), N_RANKS)
    assert p_bad[0] < 1e-6


def test_thin_draws():
    assert val.thin_draws(200, 50).tolist() == list(range(3, 200, 4))
    assert val.thin_draws(5, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="n_keep"):
        val.thin_draws(5, 6)


# ----------------------------------------------------------------------
# chi-square
# ----------------------------------------------------------------------


def test_chi_square_exact_bins_and_null_level():
    # 101 ranks in 10 bins: widths 10 or 11, expected counts exact, so the
    # rejection rate at 5 % is 5 % up to simulation noise (sd 0.7 % over 1000 sets)
    ranks = _uniform_ranks(200, 1000, seed=3)
    _, p = val.chi_square_uniformity(ranks, N_RANKS, n_bins=10)
    assert 0.03 < np.mean(p < 0.05) < 0.07


@pytest.mark.parametrize(("a", "b"), [(0.6, 0.6), (2.0, 2.0), (1.5, 1.0)],
                         ids=["overconfident", "underconfident", "biased"])
def test_chi_square_rejects_non_uniform(a, b):
    _, p = val.chi_square_uniformity(_beta_ranks(a, b, 300, seed=4), N_RANKS)
    assert p[0] < 1e-4  # strong departures with R=300: p is astronomically small


def test_chi_square_validates():
    with pytest.raises(ValueError, match="ranks must lie"):
        val.chi_square_uniformity(np.array([0, 101]), N_RANKS)
    with pytest.raises(ValueError, match="n_bins"):
        val.chi_square_uniformity(np.array([0, 1]), 5, n_bins=6)


# ----------------------------------------------------------------------
# ECDF difference and simultaneous bands
# ----------------------------------------------------------------------


def test_ecdf_difference_matches_direct_count():
    ranks = _uniform_ranks(50, 2, seed=5)
    grid, diff = val.ecdf_difference(ranks, N_RANKS)
    t = np.arange(1, N_RANKS)
    direct = (ranks[:, None, :] < t[None, :, None]).mean(axis=0) - (t / N_RANKS)[:, None]
    np.testing.assert_array_equal(diff, direct)  # arviz-stats' ECDF: the same counts
    np.testing.assert_allclose(grid, t / N_RANKS)


def test_band_is_simultaneous_at_its_level():
    # coverage checked on fresh uniform rank sets (another seed than the band's):
    # 2000 sets, binomial sd of the coverage 0.5 %, so +-2 % is about 4 sd
    _, _, _, _ = val.simultaneous_band(100, N_RANKS, 0.95, 4000, random_state=0)
    inside, p = val.ecdf_band_test(_uniform_ranks(100, 2000, seed=7), N_RANKS, 0.95, 4000)
    assert 0.93 < inside.mean() < 0.97
    # p-values of uniform ranks are uniform (discrete): about 10 % below 0.1
    assert 0.07 < np.mean(p < 0.1) < 0.13


@pytest.mark.parametrize(("a", "b"), [(0.6, 0.6), (2.0, 2.0), (1.5, 1.0)],
                         ids=["overconfident", "underconfident", "biased"])
def test_band_rejects_non_uniform(a, b):
    inside, p = val.ecdf_band_test(_beta_ranks(a, b, 300, seed=8), N_RANKS, 0.95, 2000)
    assert not inside[0]
    assert p[0] < 0.01  # far outside: fewer than 1 % of uniform sets are as extreme


def test_band_width_shrinks_with_replications():
    _, hw100, c100, _ = val.simultaneous_band(100, N_RANKS, 0.95, 2000)
    _, hw400, c400, _ = val.simultaneous_band(400, N_RANKS, 0.95, 2000)
    assert np.all(hw400 < hw100)
    assert abs(c100 - c400) < 0.3  # the standardized critical value barely depends on R


def test_band_validates_prob():
    with pytest.raises(ValueError, match="prob"):
        val.simultaneous_band(10, 11, prob=1.0)


# ----------------------------------------------------------------------
# prior draws and test quantities
# ----------------------------------------------------------------------


def test_sample_prior_requires_every_key():
    with pytest.raises(ValueError, match="means_scale"):
        _sample_prior(2, 1, {k: v for k, v in PRIORS.items() if k != "means_scale"},
                         1e-9, 5)


def test_lkj_marginals():
    # LKJ(eta) in D dims: (r + 1) / 2 ~ Beta(eta - 1 + D/2, eta - 1 + D/2) for every pair
    pri = {**PRIORS, "lkj_eta": 1.5, "sd_scale": 1.0}
    _, _, c = _sample_prior(1, 4, pri, 0.0, 4000, random_state=0)
    sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1))
    corr = c / (sd[..., :, None] * sd[..., None, :])
    b = 1.5 - 1 + 4 / 2
    for i, j in [(1, 0), (3, 0), (3, 2)]:
        p = stats.kstest((corr[:, 0, i, j] + 1) / 2, stats.beta(b, b).cdf).pvalue
        assert p > 1e-3  # exact null, fixed seed


def test_sample_prior_matches_bayesgmm_prior():
    # the NumPy prior draws against the model's own prior (pm.sample_prior_predictive
    # through BayesGMM.prior_predictive): every label-invariant quantity, two-sample KS
    pri = {**PRIORS, "means_loc": [1.0, -2.0], "sd_scale": [0.5, 2.0]}
    w, m, c = _sample_prior(2, 2, pri, 1e-9, 2000, random_state=0)
    X = np.random.default_rng(0).normal(5.0, 10.0, size=(30, 2))  # must not matter
    est = bg.BayesGMM(2, priors=pri, reg_covar=1e-9, random_state=1)
    prior = est.prior_predictive(X, draws=2000)["prior"].to_dataset()
    names, ours = val.label_invariant_quantities(w, m, c)
    _, theirs = val.label_invariant_quantities(
        prior["weights"].values[0], prior["means"].values[0], prior["covariances"].values[0])
    pvals = [stats.ks_2samp(ours[:, p], theirs[:, p]).pvalue for p in range(len(names))]
    # 11 quantities under an exact null, fixed seeds; 1e-3 each keeps the family rate ~1 %
    assert min(pvals) > 1e-3, dict(zip(names, np.round(pvals, 4), strict=True))
    # and the check has power: a different means_scale is detected
    _, m2, _ = _sample_prior(2, 2, {**pri, "means_scale": 3.6}, 1e-9, 2000, random_state=0)
    assert stats.ks_2samp(m2[:, :, 1].ravel(), prior["means"].values[0, :, :, 1].ravel()
                          ).pvalue < 1e-3


def test_label_invariant_quantities_ignore_labels():
    w, m, c = _sample_prior(3, 2, PRIORS, 1e-9, 20, random_state=2)
    X = spec.simulate_mixture(w[0], m[0], c[0], 15, random_state=0)
    perm = np.array([2, 0, 1])
    n1, q1 = val.label_invariant_quantities(w, m, c, X)
    n2, q2 = val.label_invariant_quantities(w[:, perm], m[:, perm], c[:, perm], X)
    assert n1 == n2 and len(n1) == 2 + 6 + 9 + 1
    np.testing.assert_allclose(q1, q2, rtol=1e-12)  # same numbers, reordered sums only


def test_mixture_log_likelihood_matches_scipy():
    w, m, c = _sample_prior(2, 3, PRIORS, 1e-9, 3, random_state=3)
    X = spec.simulate_mixture(w[0], m[0], c[0], 10, random_state=1)
    ref = [np.logaddexp(*[np.log(w[s, k]) + stats.multivariate_normal(m[s, k], c[s, k]).logpdf(X)
                          for k in range(2)]).sum() for s in range(3)]
    np.testing.assert_allclose(pointwise_log_likelihood(X, w, m, c).sum(axis=-1), ref, rtol=1e-10)


def test_plot_ecdf_difference_marks_outside():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    res = val.SBCResult(names=["good", "bad"],
                        ranks=np.c_[_uniform_ranks(100, 1, 0), _beta_ranks(0.5, 0.5, 100, 1)],
                        n_ranks=N_RANKS, method="nuts", n_components=2, n_features=1,
                        n_samples=10, divergences=np.zeros(100), max_rhat=np.ones(100),
                        seconds=np.ones(100))
    fig = val.plot_ecdf_difference([res], n_simulations=500)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "bad" in labels and "good" not in labels
    import matplotlib.pyplot as plt

    plt.close(fig)


# ----------------------------------------------------------------------
# every covariance type: prior draws, test quantities, wiring
# ----------------------------------------------------------------------


#: Non-default settings, different per component and per feature, so that a
#: broadcast or averaging error shows in the marginals.
PRIORS_3D = {"weights_concentration": [2.0, 5.0], "means_loc": [1.0, -2.0, 0.5],
             "means_scale": [0.5, 3.0, 1.0], "sd_scale": [0.5, 2.0, 1.1], "lkj_eta": 1.5}
REG = 0.01


@pytest.mark.parametrize("function", ["sample_prior", "label_invariant_quantities", "run_sbc"])
def test_covariance_type_is_validated(function):
    with pytest.raises(ValueError, match=r"covariance_type must be one of .*'banded'"):
        if function == "sample_prior":
            _sample_prior(2, 2, PRIORS, 1e-9, 3, covariance_type="banded")
        elif function == "label_invariant_quantities":
            w, m, c = _sample_prior(2, 2, PRIORS, 1e-9, 3)
            val.label_invariant_quantities(w, m, c, covariance_type="banded")
        else:  # raises before any fit
            val.run_sbc(1, priors=PRIORS, covariance_type="banded")


def test_lkj_eta_needed_only_with_correlations():
    pri = {k: v for k, v in PRIORS.items() if k != "lkj_eta"}
    for cov_type in ("diag", "spherical"):
        _sample_prior(2, 2, pri, 1e-9, 3, covariance_type=cov_type)
    for cov_type in ("full", "tied"):
        with pytest.raises(ValueError, match="lkj_eta"):
            _sample_prior(2, 2, pri, 1e-9, 3, covariance_type=cov_type)


def test_full_is_the_default_and_its_draws_are_unchanged():
    # the same random stream as before covariance_type existed: the default
    # is "full", and the first draw is pinned (published SBC studies reproduce)
    a = _sample_prior(2, 2, PRIORS, 1e-9, 4, random_state=3)
    b = _sample_prior(2, 2, PRIORS, 1e-9, 4, random_state=3, covariance_type="full")
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    # values of the first draw from the code of the published study (before this option)
    np.testing.assert_allclose(a[0][0], [0.6533446582161446, 0.34665534178385554], rtol=1e-12)
    np.testing.assert_allclose(a[1][0, 1], [2.873276108879292, -0.5994063871997399], rtol=1e-12)
    np.testing.assert_allclose(a[2][0, 1], [[0.00837530797967009, 0.01765651068776297],
                                            [0.01765651068776297, 0.44903984736009267]],
                               rtol=1e-12)  # same operations: rounding differences only


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_sample_prior_structure(cov_type):
    w, m, c = _sample_prior(2, 3, PRIORS_3D, REG, 500, random_state=0,
                               covariance_type=cov_type)
    assert w.shape == (500, 2) and m.shape == (500, 2, 3) and c.shape == (500, 2, 3, 3)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)  # rounding only
    np.testing.assert_array_equal(c, np.swapaxes(c, -1, -2))
    assert np.all(np.linalg.eigvalsh(c) >= REG * (1 - 1e-9))  # the floor bounds every eigenvalue
    off = ~np.eye(3, dtype=bool)
    var = np.diagonal(c, axis1=-2, axis2=-1)
    if cov_type in ("diag", "spherical"):
        assert np.all(c[..., off] == 0.0)
    else:
        assert np.all(c[..., off] != 0.0)
    if cov_type == "spherical":
        np.testing.assert_array_equal(var, var[..., :1] * np.ones(3))
    else:
        assert np.all(var[..., 0] != var[..., 1])
    if cov_type == "tied":
        np.testing.assert_array_equal(c[:, 0], c[:, 1])
    else:
        assert np.all(c[:, 0, 0, 0] != c[:, 1, 0, 0])


def _ks(sample, dist):
    return stats.kstest(np.ravel(sample), dist.cdf).pvalue


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_sample_prior_marginals_match_scipy(cov_type):
    # Every marginal of the prior in data units against its scipy.stats law, by
    # KS on 4000 draws.  The null is exact and the seed fixed; about 15 tests per
    # type at 1e-4 each keep the chance of a false alarm for any seed near 0.15 %.
    n = 4000
    w, m, c = _sample_prior(2, 3, PRIORS_3D, REG, n, random_state=1,
                               covariance_type=cov_type)
    pvals = {}
    a = np.asarray(PRIORS_3D["weights_concentration"])
    pvals["weights[0]"] = _ks(w[:, 0], stats.beta(a[0], a.sum() - a[0]))  # Dirichlet marginal
    for d in range(3):
        law = stats.norm(PRIORS_3D["means_loc"][d], PRIORS_3D["means_scale"][d])
        for k in range(2):
            pvals[f"means[{k},{d}]"] = _ks(m[:, k, d], law)
    sd = np.sqrt(np.diagonal(c, axis1=-2, axis2=-1) - REG)  # (n, K, D)
    sscale = np.asarray(PRIORS_3D["sd_scale"])
    if cov_type == "spherical":  # one sd per component, sigma = mean of sd_scale
        law = stats.halfnorm(scale=sscale.mean())
        for k in range(2):
            pvals[f"sd[{k}]"] = _ks(sd[:, k, 0], law)
        # and it is not the first feature's scale (the check has power)
        assert _ks(sd[:, :, 0], stats.halfnorm(scale=sscale[0])) < 1e-6
    else:
        for d in range(3):
            for k in range(1 if cov_type == "tied" else 2):
                pvals[f"sd[{k},{d}]"] = _ks(sd[:, k, d], stats.halfnorm(scale=sscale[d]))
    if cov_type in ("full", "tied"):
        # LKJ(eta) in D dims: (r + 1) / 2 ~ Beta(eta - 1 + D/2, eta - 1 + D/2) for every pair
        b = PRIORS_3D["lkj_eta"] - 1 + 3 / 2
        corr = (c - REG * np.eye(3)) / (sd[..., :, None] * sd[..., None, :])
        for i, j in [(1, 0), (2, 0), (2, 1)]:
            pvals[f"corr[{i},{j}]"] = _ks((corr[:, 0, i, j] + 1) / 2, stats.beta(b, b))
    assert min(pvals.values()) > 1e-4, {k: round(v, 5) for k, v in pvals.items()}
    # components independent: weights aside, the two components' sds are uncorrelated
    # (|r| of 4000 independent pairs exceeds 0.07 with probability 1e-5)
    if cov_type != "tied":
        assert abs(np.corrcoef(sd[:, 0, 0], sd[:, 1, 0])[0, 1]) < 0.07


@pytest.mark.parametrize("cov_type", ["tied", "diag", "spherical"])
def test_sample_prior_matches_bayesgmm_prior_every_type(cov_type):
    # the NumPy draws against PyMC's forward sampling of the model itself
    # (BayesGMM.prior_predictive), every test quantity of the type, two-sample KS;
    # the data only set the standardization, which must cancel
    pri = {**PRIORS, "means_loc": [1.0, -2.0], "sd_scale": [0.5, 2.0]}
    w, m, c = _sample_prior(2, 2, pri, 1e-3, 2000, random_state=0, covariance_type=cov_type)
    X = np.random.default_rng(0).normal([5.0, -1.0], [10.0, 0.3], size=(30, 2))
    est = bg.BayesGMM(2, covariance_type=cov_type, priors=pri, reg_covar=1e-3, random_state=1)
    prior = est.prior_predictive(X, draws=2000)["prior"].to_dataset()
    names, ours = val.label_invariant_quantities(w, m, c, covariance_type=cov_type)
    _, theirs = val.label_invariant_quantities(
        prior["weights"].values[0], prior["means"].values[0], prior["covariances"].values[0],
        covariance_type=cov_type)
    pvals = [stats.ks_2samp(ours[:, p], theirs[:, p]).pvalue for p in range(len(names))]
    # up to 8 quantities under an exact null, fixed seeds; 1e-3 each keeps the family rate ~1 %
    assert min(pvals) > 1e-3, dict(zip(names, np.round(pvals, 4), strict=True))


@pytest.mark.parametrize("cov_type", COVARIANCE_TYPES)
def test_spec_prior_sampler_matches_pymc_model_variables(cov_type):
    # spec.sample_prior_raw against pm.draw of the free variables of the PyMC model
    # itself, in standardized units (data with a 30-fold spread difference, so the
    # priors are divided by the standardization), every coordinate, two-sample KS
    import pymc as pm

    from bayesgmm.bayes.model import model_from_data

    X = np.random.default_rng(0).normal([5.0, -1.0, 0.0], [10.0, 0.3, 1.0], size=(30, 3))
    md = spec.model_data(X, 2, PRIORS_3D, REG, cov_type)
    model = model_from_data(md, 2, cov_type)
    names = [v.name for v in model.free_RVs]
    theirs = pm.draw([model[n] for n in names], draws=2000, random_seed=1)
    ours = spec.sample_prior_raw(md, cov_type, 2000, random_state=0)
    assert sorted(ours) == sorted(names)
    pvals = {}
    for name, t in zip(names, theirs, strict=True):
        assert ours[name].shape == t.shape, name
        o2, t2 = ours[name].reshape(2000, -1), t.reshape(2000, -1)
        for j in range(o2.shape[1]):
            pvals[f"{name}[{j}]"] = stats.ks_2samp(o2[:, j], t2[:, j]).pvalue
    # up to 20 coordinates under an exact null, fixed seeds: 1e-4 each, family rate ~0.2 %
    assert min(pvals.values()) > 1e-4, {k: round(v, 5) for k, v in pvals.items()}
    # the check has power: sd_scale 1.5 times larger is detected
    wider = {**PRIORS_3D, "sd_scale": 1.5 * np.asarray(PRIORS_3D["sd_scale"])}
    wrong = spec.sample_prior_raw(
        spec.model_data(X, 2, wider, REG, cov_type),
        cov_type, 2000, random_state=0)["sd_std"]
    t_sd = theirs[names.index("sd_std")]
    col = (slice(None), 0) if cov_type in ("tied", "spherical") else (slice(None), 0, 0)
    assert stats.ks_2samp(wrong[col], t_sd[col]).pvalue < 1e-4


def test_simulate_mixture_moments():
    # mixture mean sum_k w_k mu_k and covariance sum_k w_k (Sigma_k + mu_k mu_k^T) - m m^T
    w, m, c = _sample_prior(3, 2, PRIORS, 0.1, 1, random_state=4)
    X = spec.simulate_mixture(w[0], m[0], c[0], 200_000, random_state=0)
    mean = w[0] @ m[0]
    cov = np.einsum("k,kij->ij", w[0], c[0] + m[0][:, :, None] * m[0][:, None, :])
    cov -= np.outer(mean, mean)
    se = np.sqrt(np.diag(cov) / X.shape[0])
    assert np.all(np.abs(X.mean(axis=0) - mean) < 5 * se)
    np.testing.assert_allclose(np.cov(X.T), cov, rtol=0.03, atol=0.03 * np.sqrt(
        np.outer(np.diag(cov), np.diag(cov))).max())
    # batched: one data set per parameter set, the same stream as one call per set
    Xb = spec.simulate_mixture(np.stack([w[0], w[0]]), np.stack([m[0], m[0]]),
                               np.stack([c[0], c[0]]), 5, random_state=1)
    rng = np.random.default_rng(1)
    assert Xb.shape == (2, 5, 2)
    np.testing.assert_array_equal(Xb[0], spec.simulate_mixture(w[0], m[0], c[0], 5, rng))
    np.testing.assert_array_equal(Xb[1], spec.simulate_mixture(w[0], m[0], c[0], 5, rng))


@pytest.mark.parametrize(("cov_type", "n_cov"), [("full", 2 * 3), ("tied", 3), ("diag", 2 * 2),
                                                 ("spherical", 2)])
def test_label_invariant_quantities_rank_free_entries_only(cov_type, n_cov):
    w, m, c = _sample_prior(2, 2, PRIORS, 1e-9, 20, random_state=2, covariance_type=cov_type)
    X = spec.simulate_mixture(w[0], m[0], c[0], 15, random_state=0)
    names, q = val.label_invariant_quantities(w, m, c, X, covariance_type=cov_type)
    cov_names = [n for n in names if n.startswith("covariances")]
    assert len(cov_names) == n_cov and len(names) == 1 + 4 + n_cov + 1
    assert len(set(names)) == len(names)
    # no column is a constant (fixed zero) or a copy of another
    assert np.all(q.std(axis=0) > 0)
    assert np.linalg.matrix_rank(np.corrcoef(q.T)) == q.shape[1]
    # the labels do not matter
    perm = np.array([1, 0])
    names2, q2 = val.label_invariant_quantities(w[:, perm], m[:, perm], c[:, perm], X,
                                                covariance_type=cov_type)
    assert names2 == names
    np.testing.assert_allclose(q2, q, rtol=1e-12)  # same numbers, reordered sums only


@pytest.mark.parametrize("cov_type", ["tied", "diag", "spherical"])
def test_run_sbc_wiring_every_type(cov_type):
    # two replications of a tiny NUTS fit: ranks of the type's quantities in range
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = val.run_sbc(2, n_components=2, n_features=2, n_samples=40, priors=PRIORS,
                          reg_covar=1e-9, n_keep=10, covariance_type=cov_type,
                          fit_kwargs={"draws": 50, "tune": 50, "chains": 2}, random_state=3)
    names, _ = val.label_invariant_quantities(*_sample_prior(2, 2, PRIORS, 1e-9, 1, 0,
                                                                covariance_type=cov_type),
                                              np.zeros((1, 2)), covariance_type=cov_type)
    assert res.names == names
    assert res.covariance_type == cov_type and res.config["covariance_type"] == cov_type
    assert res.ranks.shape == (2, len(names)) and res.n_ranks == 2 * 10 + 1
    assert res.ranks.min() >= 0 and res.ranks.max() <= 20
    assert res.divergences.shape == (2,) and res.max_rhat.shape == (2,)
    assert res.n_failed == 0
    table = res.table(n_bins=2)
    assert list(table.index) == names


# ----------------------------------------------------------------------
# the study itself (slow)
# ----------------------------------------------------------------------


@contextlib.contextmanager
def _exceptions_swallowed_by_c_callbacks():
    """Collect the exceptions that C callbacks report through ``sys.unraisablehook``.

    The NUTS kernel reaches nutpie as a Numba ``cfunc``; an exception raised in
    it cannot propagate (Numba prints it, "Exception ignored in: CPUContext").
    The callback catches exceptions and reports an error code; this collector
    checks that none reaches Numba's handler.
    """
    seen: list[str] = []
    old = sys.unraisablehook
    sys.unraisablehook = lambda u: seen.append(getattr(u.exc_type, "__name__", "?"))
    try:
        yield seen
    finally:
        sys.unraisablehook = old


@pytest.mark.slow
@pytest.mark.parametrize(("cov_type", "n_features"),
                         [("full", 1), ("full", 2), ("tied", 2), ("diag", 2), ("spherical", 2)])
def test_sbc_nuts_is_calibrated(cov_type, n_features):
    # R=60 replications, 100 kept draws each (2 chains x 200, every 4th).  Every
    # quantity must pass a chi-square test (5 bins, 12 expected per bin) and stay
    # inside its simultaneous ECDF band, both at family-wise level 1 % (Bonferroni
    # over the quantities): a calibrated sampler fails with probability <= 2 %.
    with warnings.catch_warnings(), _exceptions_swallowed_by_c_callbacks() as swallowed:
        warnings.simplefilter("ignore")
        res = val.run_sbc(60, n_components=2, n_features=n_features, n_samples=60,
                          priors=PRIORS, reg_covar=1e-9, method="nuts", n_keep=50,
                          random_state=11, covariance_type=cov_type)
    assert res.n_failed == 0
    alpha = 0.01 / len(res.names)
    _, p = res.chi_square(n_bins=5)
    assert p.min() > alpha, dict(zip(res.names, p.round(4), strict=True))
    inside, p_band = res.band_test(prob=1 - alpha, n_simulations=4000)
    assert inside.all(), dict(zip(res.names, p_band.round(4), strict=True))
    # No exception may be swallowed by the kernel's C callback (SBC once found a
    # ZeroDivisionError at partial correlations rounding to +-1, now fixed).
    assert not swallowed, sorted(set(swallowed))
