"""Fast checks of the Bayesian half that never sample: NumPy maps, relabeling,
the model's log-density against naive references, WAIC/LOO/diagnostics on fake
posteriors, and input validation."""

import subprocess
import sys
import warnings

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose
from scipy import stats
from scipy.special import logsumexp

from bayesgmm import posterior
from bayesgmm._constants import COVARIANCE_TYPES
from bayesgmm.bayes.params import (
    corr_cholesky_from_cpc,
    cpc_from_corr_cholesky,
    params_from_raw,
    raw_from_params,
    unconstrained_from_raw,
)
from bayesgmm.bayes.relabel import apply_permutation, kl_cost, relabel_draws
from bayesgmm.exceptions import DiagnosticsWarning, NotFittedError


def _random_params(kind, k=3, d=3, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.ones(k) * 3)
    m = rng.normal(size=(k, d)) * 3
    a = rng.normal(size=(k, d, d))
    cov = a @ a.transpose(0, 2, 1) + np.eye(d)
    if kind == "tied":
        cov = np.broadcast_to(cov[0], (k, d, d)).copy()
    elif kind == "diag":
        cov = np.stack([np.diag(np.diag(c)) for c in cov])
    elif kind == "spherical":
        cov = np.stack([np.eye(d) * np.mean(np.diag(c)) for c in cov])
    return w, m, cov


# ---------------------------------------------------------------------------
# parameter maps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_raw_params_round_trip(kind):
    w, m, cov = _random_params(kind)
    # the model divides all features by one scale when spherical
    scale = np.full(3, 1.5) if kind == "spherical" else np.array([2.0, 0.5, 3.0])
    conv = {"center": np.array([1.0, -2.0, 0.5]), "scale": scale, "reg_diag": np.zeros(3)}
    raw = raw_from_params(w, m, cov, covariance_type=kind, **conv)
    w2, m2, c2 = params_from_raw(raw, covariance_type=kind, n_components=3, **conv)
    assert_allclose(w2, w, rtol=1e-6)  # weights are only clipped at 1e-6
    assert_allclose(m2, m, atol=1e-12)
    # full/tied: 0.99 shrink of the correlation toward identity for a safe start
    assert_allclose(c2, cov, rtol=0.03, atol=0.03)


def test_cpc_round_trip_and_unit_rows():
    z = np.random.default_rng(1).uniform(-0.9, 0.9, size=(5, 6))
    C = corr_cholesky_from_cpc(z, 4)
    assert_allclose(np.sum(C**2, axis=-1), 1.0)
    assert_allclose(cpc_from_corr_cholesky(C), z, atol=1e-12)


def test_cpc_betas_give_lkj_marginals():
    # LKJ(eta) in dimension D: every correlation is Beta(b, b) on (-1, 1) with
    # b = eta - 1 + D / 2, so its variance is 1 / (2 b + 1)
    rng = np.random.default_rng(2)
    d, eta, n = 3, 2.0, 40_000
    _rows, cols = np.tril_indices(d, k=-1)
    a = eta + (d - 2 - cols) / 2.0
    z = 2 * rng.beta(a, a, size=(n, a.size)) - 1
    C = corr_cholesky_from_cpc(z, d)
    corr = C @ np.swapaxes(C, -1, -2)
    b = eta - 1 + d / 2
    for i, j in [(1, 0), (2, 0), (2, 1)]:
        # sd of a variance estimate from 40k draws is ~0.001
        assert abs(np.var(corr[:, i, j]) - 1 / (2 * b + 1)) < 0.006


def test_unconstrained_matches_pymc_transforms():
    import pytensor

    from bayesgmm.bayes.model import build_gmm_model

    X = np.random.default_rng(0).normal(size=(30, 2))
    model = build_gmm_model(X, 3, "full")
    w, m, cov = _random_params("full", 3, 2)
    raw = raw_from_params(w, m, cov, covariance_type="full", center=np.zeros(2),
                          scale=np.ones(2), reg_diag=np.zeros(2))
    ours = unconstrained_from_raw(raw)
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms.get(rv)
        if transform is None:
            continue
        fwd = transform.forward(pytensor.tensor.constant(raw[rv.name]), *rv.owner.inputs[2:])
        expected = fwd.eval(mode="FAST_COMPILE")
        assert_allclose(ours[value.name], expected, atol=1e-10)
    from bayesgmm.bayes.params import raw_from_unconstrained

    back = raw_from_unconstrained(ours)
    for name in raw:
        assert_allclose(back[name], raw[name], atol=1e-10)


@pytest.mark.parametrize("unrolled", [True, False], ids=["unrolled", "batched"])
@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_model_likelihood_is_the_marginal_log_likelihood(kind, unrolled, monkeypatch):
    """The observed variable's log-density equals a naive scipy mixture (standardized data)."""

    from bayesgmm.bayes import model as model_module
    from bayesgmm.bayes.model import build_gmm_model, model_data

    monkeypatch.setattr(model_module, "UNROLL_MAX_FEATURES", 5 if unrolled else 0)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -1.0]
    reg = np.array([0.01, 0.02, 0.005])
    model = build_gmm_model(X, 2, kind, reg_covar=reg)
    md = model_data(X, 2, None, reg, kind)
    w, m, cov = _random_params(kind, 2, 3, seed=4)
    raw = raw_from_params(w, m, cov, covariance_type=kind, center=md.center, scale=md.scale,
                          reg_diag=md.reg_diag)
    point = unconstrained_from_raw(raw)
    rows = model.logp(vars=[model["X_obs"]], sum=False)[0]  # one term per row
    got_rows = rows.eval({v: point[v.name] for v in model.value_vars if v.name in point},
                         mode="FAST_COMPILE", on_unused_input="ignore")
    assert got_rows.shape == (40,)
    got = float(got_rows.sum())
    w2, m2, c2 = params_from_raw(raw, covariance_type=kind, n_components=2, center=np.zeros(3),
                                 scale=np.ones(3), reg_diag=md.reg_diag)
    naive = logsumexp(
        [np.log(w2[k]) + stats.multivariate_normal(m2[k], c2[k]).logpdf(md.X_std)
         for k in range(2)], axis=0).sum()
    assert_allclose(got, naive, rtol=1e-10)


@pytest.mark.parametrize("kind", COVARIANCE_TYPES)
def test_model_likelihood_with_missing_entries_is_the_observed_part(kind):
    """With NaN in X each row's term is the density of its observed part (scipy, per row)."""
    from bayesgmm.bayes.model import build_gmm_model, model_data

    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3)) * [1.0, 3.0, 0.5] + [0.0, 10.0, -1.0]
    X[rng.random(X.shape) < 0.25] = np.nan
    X[np.isnan(X).all(axis=1), 1] = 10.0
    reg = np.array([0.01, 0.02, 0.005])
    model = build_gmm_model(X, 2, kind, reg_covar=reg)
    assert "observed_mask" in model.named_vars
    md = model_data(X, 2, None, reg, kind)
    w, m, cov = _random_params(kind, 2, 3, seed=4)
    raw = raw_from_params(w, m, cov, covariance_type=kind, center=md.center, scale=md.scale,
                          reg_diag=md.reg_diag)
    point = unconstrained_from_raw(raw)
    rows = model.logp(vars=[model["X_obs"]], sum=False)[0]
    got = rows.eval({v: point[v.name] for v in model.value_vars if v.name in point},
                    mode="FAST_COMPILE", on_unused_input="ignore")
    w2, m2, c2 = params_from_raw(raw, covariance_type=kind, n_components=2, center=np.zeros(3),
                                 scale=np.ones(3), reg_diag=md.reg_diag)
    naive = []
    for z in md.X_std:
        o = ~np.isnan(z)
        naive.append(logsumexp([np.log(w2[k]) + stats.multivariate_normal(
            m2[k][o], c2[k][np.ix_(o, o)]).logpdf(z[o]) for k in range(2)]))
    assert_allclose(got, naive, rtol=1e-10)


def test_auto_reg_covar_is_squared_resolution():
    from bayesgmm.bayes.model import auto_reg_covar

    X = np.column_stack([np.round(np.linspace(0, 5, 50), 1), np.linspace(0, 1, 50) ** 3])
    reg = auto_reg_covar(X)
    assert_allclose(reg[0], 0.01, rtol=1e-6)  # values on a 0.1 grid
    assert reg[1] < 1e-5  # continuous column: only the tiny relative floor


# ---------------------------------------------------------------------------
# relabeling
# ---------------------------------------------------------------------------


def test_relabel_recovers_random_permutations():
    rng = np.random.default_rng(0)
    k, d, s = 3, 2, 400
    means = np.array([[0.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    covs = np.stack([np.eye(d) * v for v in (1.0, 0.5, 2.0)])
    m = means + 0.1 * rng.normal(size=(s, k, d))
    c = np.broadcast_to(covs, (s, k, d, d)).copy()
    perms = np.array([rng.permutation(k) for _ in range(s)])
    m_sw = apply_permutation(m, perms)
    c_sw = apply_permutation(c, perms)
    info = relabel_draws(m_sw, c_sw, means, covs)
    assert_allclose(apply_permutation(m_sw, info.permutation), m)
    assert info.n_permuted == int(np.sum(np.any(perms != np.arange(k), axis=1)))


def test_kl_cost_zero_on_itself_and_positive_elsewhere():
    _, m, c = _random_params("full", 3, 2)
    cost = kl_cost(m[None], c[None], m, c)[0]
    assert_allclose(np.diag(cost), 0.0, atol=1e-10)
    assert np.all(cost[~np.eye(3, dtype=bool)] > 0)


# ---------------------------------------------------------------------------
# posterior summaries on fake posteriors
# ---------------------------------------------------------------------------


def _fake_tree(n_chain=2, n_draw=200, shift_chain=0.0, seed=0, n_obs=60):
    rng = np.random.default_rng(seed)
    k, d = 2, 2
    means = np.array([[-3.0, 0.0], [3.0, 0.0]])
    X = np.vstack([rng.normal(means[j], 1.0, size=(n_obs // 2, d)) for j in range(k)])
    m = means + 0.1 * rng.normal(size=(n_chain, n_draw, k, d))
    m[1:] += shift_chain
    w = np.broadcast_to([0.5, 0.5], (n_chain, n_draw, k)) + 0.02 * rng.normal(
        size=(n_chain, n_draw, 1)) * [1, -1]
    c = np.broadcast_to(np.eye(d), (n_chain, n_draw, k, d, d)) * (
        1 + 0.05 * rng.random((n_chain, n_draw, k, 1, 1)))
    s = n_chain * n_draw
    ll = posterior.pointwise_log_likelihood(X, w.reshape(s, k), m.reshape(s, k, d),
                                            c.reshape(s, k, d, d))
    names = ["x0", "x1"]
    cd = {"chain": np.arange(n_chain), "draw": np.arange(n_draw)}
    return xr.DataTree.from_dict({
        "posterior": xr.Dataset(
            {"weights": (("chain", "draw", "component"), w),
             "means": (("chain", "draw", "component", "feature"), m),
             "covariances": (("chain", "draw", "component", "feature", "feature_bis"), c)},
            coords={**cd, "component": [0, 1], "feature": names, "feature_bis": names}),
        "log_likelihood": xr.Dataset({"X": (("chain", "draw", "obs"),
                                            ll.reshape(n_chain, n_draw, -1))},
                                     coords={**cd, "obs": np.arange(X.shape[0])}),
        "observed_data": xr.Dataset({"X": (("obs", "feature"), X)},
                                    coords={"obs": np.arange(X.shape[0]), "feature": names}),
        "sample_stats": xr.Dataset({
            "diverging": (("chain", "draw"), np.zeros((n_chain, n_draw), bool)),
            "energy": (("chain", "draw"), rng.normal(size=(n_chain, n_draw)))},
            coords=cd),
    })


def test_label_switches_within_chains_differ_from_draws_relabeled():
    # chain 0 settled in the other labeling (every draw relabeled, no switch);
    # chain 1 visits the other labeling for one draw, 3 times: away and back, 6 switches
    tree = _fake_tree()
    perm = np.zeros((2, 200, 2), dtype=int)
    perm[0] = [1, 0]
    perm[1] = [0, 1]
    perm[1, [5, 50, 120]] = [1, 0]
    tree["relabeling"] = xr.Dataset(
        {"permutation": (("chain", "draw", "component"), perm)},
        coords={"chain": [0, 1], "draw": np.arange(200), "component": [0, 1]},
        attrs={"n_permuted": 203})
    table = posterior.diagnostics(tree, warn=False)
    assert table.attrs["label_switches_within_chains"] == 6
    assert table.attrs["draws_relabeled"] == 203
    assert (table["label_switches_within_chains"] == 6).all()


def test_label_switches_count_changes_not_draws():
    from bayesgmm.bayes.relabel import switches_within_chains

    once = np.zeros((1, 1000, 2), dtype=int)
    once[0, :400] = [0, 1]
    once[0, 400:] = [1, 0]  # one switch at draw 400, then stays
    assert switches_within_chains(once) == 1
    alternating = np.zeros((1, 1000, 2), dtype=int)
    alternating[0, ::2] = [0, 1]
    alternating[0, 1::2] = [1, 0]  # a switch at every draw
    assert switches_within_chains(alternating) == 999


def test_pointwise_log_likelihood_matches_scipy():
    w, m, c = _random_params("full", 3, 2, seed=5)
    X = np.random.default_rng(6).normal(size=(25, 2)) * 3
    got = posterior.pointwise_log_likelihood(X, w[None], m[None], c[None])[0]
    naive = np.log(sum(w[k] * stats.multivariate_normal(m[k], c[k]).pdf(X) for k in range(3)))
    assert_allclose(got, naive, rtol=1e-10)
    resp = posterior.draw_responsibilities(X, w[None], m[None], c[None])[0]
    assert_allclose(resp.sum(axis=1), 1.0)


def test_waic_matches_hand_computation():
    tree = _fake_tree()
    ll = tree["log_likelihood"]["X"].values.reshape(-1, 60)
    lppd = np.log(np.mean(np.exp(ll), axis=0))
    p = np.var(ll, axis=0, ddof=1)
    out = posterior.waic(tree)
    assert_allclose(out.elpd, np.sum(lppd - p), rtol=1e-10)
    assert_allclose(out.p, p.sum(), rtol=1e-10)
    assert_allclose(out.se, np.sqrt(60 * np.var(lppd - p, ddof=1)), rtol=1e-10)
    assert out.pointwise.dims == ("obs",) and not out.warning
    assert "elpd_waic" in str(out)
    loo = posterior.loo(tree)
    # both estimate the same elpd; WAIC and PSIS-LOO agree closely on a well-specified model
    assert abs(loo.elpd - out.elpd) < 1.0


def test_waic_warns_on_large_pointwise_variance():
    tree = _fake_tree()
    ll = tree["log_likelihood"]["X"].values.copy()
    ll[..., 0] += np.random.default_rng(0).normal(scale=2.0, size=ll.shape[:2])
    groups = {name: node.to_dataset() for name, node in tree.children.items()}
    groups["log_likelihood"]["X"] = (("chain", "draw", "obs"), ll)
    tree = xr.DataTree.from_dict(groups)
    with pytest.warns(DiagnosticsWarning, match="WAIC"):
        assert posterior.waic(tree).warning


def test_diagnostics_table_and_warnings():
    good = posterior.diagnostics(_fake_tree(), warn=False)
    assert {"r_hat", "ess_bulk", "ess_tail", "mcse_mean", "divergences",
            "label_switches_within_chains"} <= set(good.columns)
    assert "means[0, x0]" in good.index and len(good) == 2 + 4 + 6
    assert good["r_hat"].max() < 1.05
    assert good.attrs["divergences"] == 0 and len(good.attrs["ebfmi"]) == 2
    # E-BFMI (Betancourt 2016): sum of squared energy jumps over the energy's sum of squares
    energy = _fake_tree()["sample_stats"]["energy"].values
    textbook = (np.diff(energy, axis=1) ** 2).sum(1) / ((energy - energy.mean(1, keepdims=True))
                                                         ** 2).sum(1)
    assert_allclose(good.attrs["ebfmi"], textbook, rtol=1e-12)
    with pytest.warns(DiagnosticsWarning) as record:
        posterior.diagnostics(_fake_tree(shift_chain=1.0))
    messages = " ".join(str(r.message) for r in record)
    assert "R-hat > 1.01" in messages and "ESS < 400" in messages


def test_responsibility_interval_and_uncertainty_on_fake_tree():
    tree = _fake_tree()
    iv = posterior.responsibility_interval(tree, 0.9)
    assert iv.dims == ("obs", "component", "ci_bound")
    assert np.all(iv.sel(ci_bound="lower") <= iv.sel(ci_bound="upper"))
    assert iv.attrs["ci_prob"] == 0.9
    table = posterior.assignment_uncertainty(tree)
    assert list(table.columns) == ["label", "probability", "lower", "upper", "entropy"]
    assert np.all((table["probability"] >= 0.5) & (table["entropy"] >= 0))


def test_posterior_functions_need_draws():
    with pytest.raises(ValueError, match="posterior"):
        posterior.waic(xr.DataTree())


# ---------------------------------------------------------------------------
# validation (raises before any compilation)
# ---------------------------------------------------------------------------

BAD = [
    ({"method": "mcmc"}, "method"),
    ({"draws": 0}, "draws must be an integer >= 1, got 0"),
    ({"chains": 0}, "chains must be an integer >= 1, got 0"),
    ({"tune": -1}, "tune"),
    ({"sampler": "emcee"}, "sampler"),
    ({"target_accept": 1.5}, "target_accept"),
    ({"reg_covar": "big"}, "reg_covar"),
    ({"reg_covar": -1.0}, "reg_covar"),
    ({"covariance_type": "banded"}, "covariance_type"),
    ({"priors": {"alpha": 1.0}}, r"Unknown prior name\(s\) \['alpha'\]"),
    ({"priors": {"weights_concentration": 0.0}}, "weights_concentration.*> 0.*0.0"),
    ({"priors": {"weights_concentration": [1.0, -1.0]}}, "weights_concentration"),
    ({"priors": {"means_scale": -2.0}}, "means_scale"),
    ({"priors": {"lkj_eta": 0}}, "lkj_eta"),
    ({"priors": [1, 2]}, "priors must be a mapping"),
]


@pytest.mark.parametrize(("params", "match"), BAD, ids=[str(p) for p, _ in BAD])
def test_bad_parameters_raise_clear_errors(params, match):
    import bayesgmm as bg

    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match=match):
        bg.BayesGMM(2, progressbar=False, **params).fit(X)


def test_not_fitted():
    import bayesgmm as bg

    with pytest.raises(NotFittedError):
        bg.BayesGMM(2).predict(np.zeros((3, 2)))


def test_numpy_layers_do_not_import_pymc():
    code = ("import sys, bayesgmm.posterior, bayesgmm.bayes.relabel, bayesgmm.bayes.params; "
            "print(sorted(m for m in ('pymc', 'pytensor', 'nutpie') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_sklearn_contract_get_params():
    import bayesgmm as bg

    est = bg.BayesGMM(3, method="advi", priors={"lkj_eta": 1.0})
    params = est.get_params()
    assert params["n_components"] == 3 and params["method"] == "advi"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clone = type(est)(**params)
    assert clone.get_params() == params
