"""The scikit-learn style Bayesian estimator :class:`BayesGMM`."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from bayesgmm import em, posterior
from bayesgmm._constants import (
    CHAIN,
    COMPONENT,
    DRAW,
    FEATURE,
    FEATURE_BIS,
    MISSING_OPTIONS,
    OBS,
)
from bayesgmm._validation import (
    check_distinct_rows,
    check_X,
    feature_names_of,
    validate_choice,
    validate_covariance_type,
    validate_int,
    validate_positive,
)
from bayesgmm.bayes import inference
from bayesgmm.bayes.model import (
    PRIOR_KEYS,
    auto_reg_covar,
    build_gmm_model,
    model_data,
    resolve_priors,
)
from bayesgmm.bayes.params import params_from_raw, raw_from_params
from bayesgmm.bayes.relabel import apply_permutation, relabel_draws, switches_within_chains
from bayesgmm.bayes.spec import sample_prior, simulate_mixture
from bayesgmm.estimators import EMGMM, BaseGMM
from bayesgmm.exceptions import ConvergenceWarning
from bayesgmm.results import GMMResult

_NAN_HINT = ("BayesGMM(missing='marginalize') fits them as missing at random, or drop or "
             "impute those rows")

__all__ = ["BayesGMM"]

_MAX_PREDICT_DRAWS = 400


class BayesGMM(BaseGMM):
    """Bayesian Gaussian mixture fitted in PyMC by NUTS or ADVI.

    The labels are marginalized (log-sum-exp over components), every posterior
    draw is relabeled to the EM solution (Hungarian matching), and the result
    is a :class:`~bayesgmm.results.GMMResult` whose parameters carry ``chain``
    and ``draw`` dims, with the whole posterior tree in ``result_.idata``.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure (see :func:`bayesgmm.bayes.model.build_gmm_model`).
        The mclust names of these four, "VVV", "EEE", "VVI" and "VII", are
        accepted as aliases; the other ten mclust models have no Bayesian
        counterpart here and raise a ``ValueError`` (EMGMM fits them).
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
        Inference: NUTS, mean-field ADVI or full-rank ADVI.
    draws : int, default=1000
        Posterior draws per chain (ADVI: draws from the approximation).
    tune : int, default=1000
        NUTS tuning steps per chain.
    chains : int, default=4
        NUTS chains (ADVI always gives one).
    sampler : str or None, default=None
        NUTS implementation: ``"nutpie"`` (the default: nutpie's Rust NUTS on
        bayesgmm's own Numba kernel for this model's log-density and gradient,
        compiled once per machine, 7 s, then loaded in 0.3 s; see docs/bayes.md
        for the measurements), ``"nutpie_native"`` (nutpie compiles the PyMC
        model: 9-10 s in every new process, not cached on disk),
        or a PyMC ``nuts_sampler`` (``"pymc"``, ``"numpyro"``, ``"blackjax"``
        when installed), which also compile the PyMC model.  For ADVI:
        ``"pymc"`` fits with :func:`pymc.fit` on PyTensor's graph; anything
        else (the default) runs ADVI on bayesgmm's kernel (no compilation;
        :mod:`bayesgmm.bayes.vi`).
    target_accept : float, default=0.9
        NUTS target acceptance rate; raise it (e.g. 0.95) after divergences.
        Mixtures have narrow regions (small components): 0.9 removed every
        divergence on iris sepal data with K=3 (189 and 161 at 0.8 for two
        seeds) for about 10 % more sampling time (docs/bayes.md).
    priors : mapping or None, default=None
        Prior settings; keys ``weights_concentration`` (Dirichlet alpha, 1.0),
        ``means_loc`` (data mean), ``means_scale`` (2 x data sd), ``sd_scale``
        (HalfNormal scale of component sds, data sd), ``lkj_eta`` (2.0).
        Unknown keys raise ``ValueError``.  ``weights_concentration="sparse"``
        (or ``("gamma", shape, rate)``) samples one symmetric concentration
        ``alpha ~ Gamma(10, 10 n_components)`` (posterior variable ``alpha``):
        a sparse finite mixture, whose number of non-empty components
        ``result_.n_clusters()`` gives (docs/n_clusters.md).  Keep ``weights_concentration``
        symmetric (one number): with unequal values (e.g. ``[3, 6]``) the
        simulation-based calibration found NUTS's posterior of the first
        weight too narrow for full and diag covariances (spherical stayed
        inside its band; tied not re-measured), possibly because a chain
        samples only the label mode it starts in (docs/calibration.md, record
        ``benchmarks/results/sbc_asym_weights.json``); if you set unequal
        values, do not trust the weights' intervals.
    reg_covar : float or "auto", default="auto"
        Non-negative floor added to the diagonal of every covariance (data
        units).  ``"auto"``: per feature, the squared resolution of the data
        (smallest gap between distinct values, e.g. 0.01 for iris measured to
        0.1 cm), at least 1e-6 times its variance; see
        :func:`bayesgmm.bayes.model.auto_reg_covar`.  A floor is needed because
        the HalfNormal prior on the standard deviations has mass near zero: with
        repeated or rounded values, components otherwise collapse onto them.
    n_steps : int, default=20000
        ADVI: maximum optimisation steps.
    advi_tol : float, default=1e-3
        ADVI: relative change of the mean loss (negative ELBO) between two
        windows of 1000 steps that counts as converged.
    batch_size : int or None, default=None
        ADVI only: rows per optimisation step.  None: every step uses all the
        data (full-batch ADVI).  An int: minibatch ADVI, each step's ELBO
        gradient from one minibatch (rows drawn without replacement within
        each pass over the data, from ``random_state``), its likelihood
        scaled by ``n_samples / batch size``, the prior counted once, and a
        control variate at an anchor point; the learning rate is halved once
        the windowed ELBO stops improving, until the window-averaged
        approximation moves by less than 0.2 of its own standard deviations
        (:func:`bayesgmm.bayes.vi.fit_minibatch_advi`; docs/large_data.md).
        For large data sets (10^5 rows and more); ``batch_size=n_samples``
        is full-batch ADVI.  Not with ``method="nuts"`` nor ``sampler="pymc"``.
    random_state : int, RandomState instance or None, default=None
        Seed for the EM reference, the sampler and :meth:`sample`.
    progressbar : bool, default=True
        Show progress bars.
    missing : {"marginalize", "error"}, default="marginalize"
        What NaN entries mean. ``"marginalize"``: a missing entry, assumed
        missing at random; the likelihood of a row is the density of its
        observed part (the PyMC model marks them in an ``observed_mask``
        container). Such data are sampled on the model's own PyMC graph
        (nutpie, or ``pm.fit`` for ADVI) with a
        :class:`~bayesgmm.exceptions.SamplerFallbackWarning`: the fast kernel
        handles complete data only, for now. Responsibilities, WAIC and LOO
        use each row's observed part. ``"error"``: refuse NaN.

    Attributes
    ----------
    result_ : GMMResult
        Posterior draws (relabeled), posterior-mean responsibilities, criteria at
        the posterior mean, and ``idata`` (posterior, sample_stats or variational,
        log_likelihood, observed_data, relabeling).
    model_ : pymc.Model
        The PyMC model that was fitted.
    reference_ : EMGMM
        The EM fit used for initial values and relabeling.
    weights_, means_, covariances_ : ndarray
        Posterior means, in scikit-learn's shapes for ``covariance_type``.
    n_features_in_ : int
        Number of features seen in ``fit``.
    timing_ : dict
        Seconds spent compiling and sampling.
    reg_covar_ : ndarray of shape (n_features,)
        The variance floor used (resolved from ``"auto"``).

    Examples
    --------
    >>> import bayesgmm as bg
    >>> X = bg.datasets.load_faithful()
    >>> fit = bg.BayesGMM(n_components=2, draws=200, tune=200, chains=2,
    ...                   random_state=0, progressbar=False).fit(X)  # doctest: +SKIP
    >>> fit.result_.weights.dims  # doctest: +SKIP
    ('chain', 'draw', 'component')
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        method: str = "nuts",
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 4,
        sampler: str | None = None,
        target_accept: float = 0.9,
        priors: Mapping[str, Any] | None = None,
        reg_covar: float | str = "auto",
        n_steps: int = 20_000,
        advi_tol: float = 1e-3,
        batch_size: int | None = None,
        random_state: Any = None,
        progressbar: bool = True,
        missing: str = "marginalize",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.method = method
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.sampler = sampler
        self.target_accept = target_accept
        self.priors = priors
        self.reg_covar = reg_covar
        self.n_steps = n_steps
        self.advi_tol = advi_tol
        self.batch_size = batch_size
        self.random_state = random_state
        self.progressbar = progressbar
        self.missing = missing

    # ------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------

    @property
    def _kind(self) -> str:
        """``covariance_type`` as a scikit-learn name: VVV, EEE, VVI, VII are aliases."""
        return validate_covariance_type(self.covariance_type)

    def _validate_params(self) -> str:
        validate_int(self.n_components, "n_components")
        validate_covariance_type(self.covariance_type)
        validate_choice(self.method, "method", inference.SUPPORTED_METHODS)
        validate_int(self.draws, "draws")
        validate_int(self.tune, "tune", minimum=0)
        validate_int(self.chains, "chains")
        validate_int(self.n_steps, "n_steps")
        validate_positive(self.advi_tol, "advi_tol")
        if self.batch_size is not None:
            validate_int(self.batch_size, "batch_size")
            if self.method == "nuts":
                raise ValueError(
                    f"batch_size={self.batch_size!r} needs method='advi' or 'fullrank_advi' "
                    "(minibatch ADVI); NUTS uses every row at every step. Set batch_size=None "
                    "for NUTS."
                )
            if self.sampler == "pymc":
                raise ValueError(
                    f"batch_size={self.batch_size!r} runs on bayesgmm's kernel; sampler='pymc' "
                    "(pm.fit) is full batch. Leave sampler=None, or set batch_size=None."
                )
        validate_choice(self.missing, "missing", MISSING_OPTIONS)
        if not (isinstance(self.reg_covar, str) and self.reg_covar == "auto"):
            if isinstance(self.reg_covar, str):
                raise ValueError(
                    f"reg_covar must be 'auto' or a finite number >= 0, got {self.reg_covar!r}."
                )
            validate_positive(self.reg_covar, "reg_covar", allow_zero=True)
        ta = self.target_accept
        if isinstance(ta, bool) or not isinstance(ta, int | float) or not 0 < ta < 1:
            raise ValueError(
                f"target_accept must be a number in the open interval (0, 1), got {ta!r}."
            )
        if self.priors is not None and not isinstance(self.priors, Mapping):
            raise ValueError(
                f"priors must be a mapping with keys among {sorted(PRIOR_KEYS)} or None, "
                f"got {type(self.priors).__name__}."
            )
        available = inference.available_samplers()
        if self.sampler is None:  # nutpie when installed, else PyMC's own NUTS
            sampler = inference.DEFAULT_SAMPLER if inference.DEFAULT_SAMPLER in available \
                else "pymc"
        else:
            sampler = self.sampler
        if sampler not in available:
            raise ValueError(f"sampler must be one of {list(available)}, got {sampler!r}.")
        return sampler

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> BayesGMM:
        """Fit the Bayesian mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data: a NumPy array or a pandas DataFrame (column names become
            the ``feature`` coordinate).
        y : None
            Ignored; present for the scikit-learn API.

        Returns
        -------
        BayesGMM
            The fitted estimator.
        """
        sampler = self._validate_params()
        arr = check_X(X, n_components=self.n_components, allow_nan=self._accepts_missing(),
                      nan_hint=_NAN_HINT)
        check_distinct_rows(arr, self.n_components)  # before the EM reference fails on it
        if self.batch_size is not None and self.batch_size > arr.shape[0]:
            raise ValueError(
                f"batch_size must be at most the number of rows ({arr.shape[0]}), got "
                f"{self.batch_size!r}. Use batch_size=None for full-batch ADVI."
            )
        k, d = self.n_components, arr.shape[1]
        resolve_priors(self.priors, k, d)  # fail early, before any EM or compilation
        self._set_n_features(X, arr)
        names = feature_names_of(X, d)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        reg = self._reg(arr)
        self.reg_covar_ = reg

        with warnings.catch_warnings():
            # the EM fit only supplies starting values and the labelling reference
            warnings.simplefilter("ignore")
            ref = EMGMM(
                k, covariance_type=self._kind, reg_covar=float(reg.min()),
                n_init=10, random_state=seed,
            ).fit(arr)
        self.reference_ = ref
        ref_cov = em.full_covariances(ref.covariances_, self._kind, k, d)

        model = build_gmm_model(arr, k, self._kind, self.priors, reg)
        self.model_ = model
        md = model_data(arr, k, self.priors, reg, self._kind)
        conv = {"center": md.center, "scale": md.scale, "reg_diag": md.reg_diag}
        start = (ref.weights_, ref.means_, ref_cov)
        if md.concentration_prior is not None and not np.isnan(arr).any():
            # a sparse mixture starts from the BIC-best EM fit padded with empty components
            # (bayesgmm.bayes.n_clusters.sparse_start): no superfluous component to drain
            from bayesgmm.bayes.n_clusters import sparse_start

            start = sparse_start(arr, k, self._kind, float(reg.min()),
                                 md.concentration_prior[0] / md.concentration_prior[1], seed)
        init_raw = raw_from_params(*start, covariance_type=self._kind, **conv)

        if self.method == "nuts":
            out = inference.run_nuts(
                model, draws=self.draws, tune=self.tune, chains=self.chains,
                random_seed=seed, progressbar=self.progressbar, sampler=sampler,
                init_raw=init_raw, target_accept=float(self.target_accept), built_here=True,
            )
        else:
            out = inference.run_advi(
                model, method=self.method, n_steps=self.n_steps, draws=self.draws,
                random_seed=seed, progressbar=self.progressbar, init_raw=init_raw,
                tolerance=self.advi_tol, engine="pymc" if self.sampler == "pymc" else "kernel",
                built_here=True, batch_size=self.batch_size,
            )
        self.timing_ = out.timing

        w, m, c = params_from_raw(out.raw, covariance_type=self._kind,
                                  n_components=k, **conv)
        n_chain, n_draw = w.shape[:2]
        s = n_chain * n_draw
        info = relabel_draws(m.reshape(s, k, d), c.reshape(s, k, d, d), ref.means_, ref_cov)
        perm = info.permutation
        w = apply_permutation(w.reshape(s, k), perm)
        m = apply_permutation(m.reshape(s, k, d), perm)
        c = apply_permutation(c.reshape(s, k, d, d), perm)

        self.result_ = self._make_result(arr, names, w, m, c, perm, info, out, sampler,
                                         n_chain, n_draw)
        self._store_point()
        self._warn_fit(out)
        return self

    def _make_result(self, arr, names, w, m, c, perm, info, out, sampler, n_chain, n_draw):
        k, d = self.n_components, arr.shape[1]
        comp = np.arange(k)
        chain_draw = {CHAIN: np.arange(n_chain), DRAW: np.arange(n_draw)}
        post = xr.Dataset(
            {
                "weights": ((CHAIN, DRAW, COMPONENT), w.reshape(n_chain, n_draw, k)),
                "means": ((CHAIN, DRAW, COMPONENT, FEATURE), m.reshape(n_chain, n_draw, k, d)),
                "covariances": ((CHAIN, DRAW, COMPONENT, FEATURE, FEATURE_BIS),
                                c.reshape(n_chain, n_draw, k, d, d)),
            },
            coords={**chain_draw, COMPONENT: comp, FEATURE: names, FEATURE_BIS: names},
            attrs={"method": self.method, "sampler": sampler if self.method == "nuts" else "",
                   "covariance_type": self._kind},
        )
        if "alpha" in out.raw:  # a sampled Dirichlet concentration (sparse finite mixture)
            post["alpha"] = ((CHAIN, DRAW), np.asarray(out.raw["alpha"]).reshape(n_chain, n_draw))
        # one pass over blocks of observations (all draws each, bounded memory): the pointwise
        # log-likelihood (float32 for large fits), mean responsibilities and their interval
        summary = posterior.draw_summaries(
            arr, w, m, c, prob=posterior.DEFAULT_PROB,
            log_lik_dtype=posterior.log_likelihood_dtype(n_chain * n_draw * arr.shape[0]))
        ll, resp = summary.log_lik, summary.mean
        perm_c = perm.reshape(n_chain, n_draw, k)
        switches = switches_within_chains(perm_c)
        groups: dict[str, xr.Dataset] = {
            "posterior": post,
            "log_likelihood": posterior.log_likelihood_group(ll, chain_draw[CHAIN],
                                                             chain_draw[DRAW]),
            "observed_data": xr.Dataset(
                {posterior.OBSERVED_VAR: ((OBS, FEATURE), arr)},
                coords={OBS: np.arange(arr.shape[0]), FEATURE: names},
            ),
            posterior.RESPONSIBILITY_GROUP: posterior.responsibility_group(
                resp, summary.interval, posterior.DEFAULT_PROB, comp),
            "relabeling": xr.Dataset(
                {"permutation": ((CHAIN, DRAW, COMPONENT), perm_c)},
                coords={**chain_draw, COMPONENT: comp},
                attrs={"reference": "em", "cost": "kl", "n_permuted": info.n_permuted,
                       "n_switches_within_chains": switches, "n_iter": info.n_iter},
            ),
        }
        if out.sample_stats is not None:
            groups["sample_stats"] = out.sample_stats
        if out.variational is not None:
            groups["variational"] = out.variational
        idata = xr.DataTree.from_dict(groups)
        weights = post["weights"]
        point = em.EMState(
            post["weights"].mean((CHAIN, DRAW)).values, post["means"].mean((CHAIN, DRAW)).values,
            self._sklearn_covariances(post["covariances"].mean((CHAIN, DRAW)).values),
            None, self._kind,
        )
        point = point._replace(precisions_cholesky=em.precision_cholesky(
            point.covariances, self._kind, float(self.reg_covar_.min())))
        self._point = point
        return GMMResult(
            weights=weights,
            means=post["means"],
            covariances=post["covariances"],
            responsibilities=xr.DataArray(
                resp, dims=(OBS, COMPONENT),
                coords={OBS: np.arange(arr.shape[0]), COMPONENT: comp},
                name="responsibilities",
            ),
            log_likelihood=em.log_likelihood(arr, point),
            covariance_type=self._kind,
            method=self.method,
            config=self._config(sampler),
            idata=idata,
            converged=bool(out.converged),
            n_iter=out.n_iter,
        )

    def _reg(self, arr: np.ndarray) -> np.ndarray:
        if isinstance(self.reg_covar, str):
            reg = auto_reg_covar(arr)
            if self._kind == "spherical":  # one floor keeps it spherical
                reg = np.full(arr.shape[1], reg.max())
            return reg
        return np.full(arr.shape[1], float(self.reg_covar))

    def _sklearn_covariances(self, full: np.ndarray) -> np.ndarray:
        kind = self._kind
        if kind == "full":
            return full
        if kind == "tied":
            return full.mean(axis=0)
        diag = np.diagonal(full, axis1=-2, axis2=-1)
        return diag if kind == "diag" else diag.mean(axis=-1)

    def _store_point(self) -> None:
        self.weights_ = self._point.weights
        self.means_ = self._point.means
        self.covariances_ = self._point.covariances

    def _warn_fit(self, out: inference.InferenceOutput) -> None:
        if self.method != "nuts":
            if not out.converged:
                warnings.warn(
                    f"BayesGMM: {self.method} did not converge in n_steps={self.n_steps} "
                    f"steps (advi_tol={self.advi_tol:g}). Increase n_steps or use method='nuts'.",
                    ConvergenceWarning, stacklevel=3,
                )
            problem = posterior.vi_pareto_k_problem(
                out.variational.attrs.get("pareto_k", np.nan))
            if problem:
                warnings.warn(f"BayesGMM: {self.method} {problem}", ConvergenceWarning,
                              stacklevel=3)
            return
        table = posterior.diagnostics(self.result_, warn=False)
        problems = []
        if table.attrs.get("divergences", 0):
            problems.append(f"{table.attrs['divergences']} divergent transitions")
        if self.chains > 1 and np.nanmax(table["r_hat"].values) > posterior.RHAT_MAX:
            problems.append(f"max R-hat {np.nanmax(table['r_hat'].values):.3f} > "
                            f"{posterior.RHAT_MAX}")
            # chains that disagree have not converged, whatever the sampler reported
            self.result_.converged = False
        if problems:
            warnings.warn(
                "BayesGMM: " + " and ".join(problems) + ". Run more tune/draws, raise "
                "target_accept, or reconsider n_components; see result_.diagnostics().",
                ConvergenceWarning, stacklevel=3,
            )

    def _config(self, sampler: str) -> dict[str, Any]:
        params = self.get_params()
        if params["priors"] is not None:
            params["priors"] = {
                key: np.asarray(v).tolist() for key, v in dict(params["priors"]).items()
            }
        rs = params["random_state"]
        params["random_state"] = rs if rs is None or isinstance(rs, int | np.integer) else repr(rs)
        params["sampler_used"] = sampler
        params["reg_covar_used"] = np.asarray(self.reg_covar_, dtype=float).tolist()
        return params

    # ------------------------------------------------------------------
    # prediction from the posterior
    # ------------------------------------------------------------------

    def _point_state(self) -> em.EMState:
        check_is_fitted(self)
        return self._point

    def _thinned_draws(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        post = self.result_.idata["posterior"].to_dataset()
        s = post.sizes[CHAIN] * post.sizes[DRAW]
        k, d = self.n_components, self.n_features_in_
        idx = np.unique(np.linspace(0, s - 1, min(s, _MAX_PREDICT_DRAWS)).astype(int))
        w = post["weights"].values.reshape(s, k)[idx]
        m = post["means"].values.reshape(s, k, d)[idx]
        c = post["covariances"].values.reshape(s, k, d, d)[idx]
        return w, m, c

    def predict_proba(self, X: Any) -> np.ndarray:
        """Posterior-mean responsibilities of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        ndarray of shape (n_samples, n_components)
            ``E[p(z = k | x, theta)]`` over (at most 400 evenly spaced) posterior
            draws; rows sum to one.
        """
        arr = self._validate_predict_data(X)
        # in blocks of observations: never the (draws, obs, components) array
        return posterior.draw_summaries(arr, *self._thinned_draws(), log_lik=False).mean

    def score_samples(self, X: Any) -> np.ndarray:
        """Log posterior-predictive density of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``log mean_s p(x | theta_s)`` over (at most 400) posterior draws.
        """
        arr = self._validate_predict_data(X)
        ll = posterior.pointwise_log_likelihood(arr, *self._thinned_draws())
        return np.logaddexp.reduce(ll, axis=0) - np.log(ll.shape[0])

    # ------------------------------------------------------------------
    # prior predictive
    # ------------------------------------------------------------------

    def prior_predictive(self, X: Any, draws: int = 500, random_state: Any = None) -> xr.DataTree:
        """Draw parameters and data sets from the prior, to check the prior.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data that sets the standardization (data-based prior defaults) and
            the size of the simulated data sets; not fitted.
        draws : int, default=500
            Number of prior draws.
        random_state : int or None, default=None
            Seed (defaults to ``self.random_state``).

        Returns
        -------
        xarray.DataTree
            ``prior`` (``weights``, ``means``, ``covariances`` with dims
            ``(chain=1, draw, ...)``) and ``prior_predictive`` (``X`` with dims
            ``(chain, draw, obs, feature)``).
        """
        draws = validate_int(draws, "draws")
        validate_int(self.n_components, "n_components")
        validate_covariance_type(self.covariance_type)
        arr = check_X(X, n_components=self.n_components, nan_hint=_NAN_HINT)
        k, d = self.n_components, arr.shape[1]
        names = feature_names_of(X, d)
        rs = self.random_state if random_state is None else random_state
        seed = int(check_random_state(rs).randint(np.iinfo(np.int32).max))
        md = model_data(arr, k, self.priors, self._reg(arr), self._kind)
        # the model's prior, drawn by the one NumPy sampler (no PyMC graph is built)
        w, m, c = (a[None] for a in sample_prior(md, self._kind, draws, seed))
        n = arr.shape[0]
        sims = simulate_mixture(w, m, c, n, seed)  # (chain, draw, obs, feature)
        n_chain, n_draw = w.shape[:2]
        coords = {CHAIN: np.arange(n_chain), DRAW: np.arange(n_draw), COMPONENT: np.arange(k),
                  FEATURE: names, FEATURE_BIS: names}
        return xr.DataTree.from_dict({
            "prior": xr.Dataset(
                {"weights": ((CHAIN, DRAW, COMPONENT), w),
                 "means": ((CHAIN, DRAW, COMPONENT, FEATURE), m),
                 "covariances": ((CHAIN, DRAW, COMPONENT, FEATURE, FEATURE_BIS), c)},
                coords=coords,
            ),
            "prior_predictive": xr.Dataset(
                {"X": ((CHAIN, DRAW, OBS, FEATURE), sims)},
                coords={CHAIN: coords[CHAIN], DRAW: coords[DRAW], OBS: np.arange(n),
                        FEATURE: names},
            ),
        })
