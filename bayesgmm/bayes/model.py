"""PyMC model of a Gaussian mixture with the labels marginalized.

The model is written once for all components (no Python loop over components)
and works on standardized data: ``Z = (X - center) / scale``.  Every
hyperparameter, and the data, is a :func:`pymc.Data` container, so a compiled
graph (ADVI, the PyMC samplers) can be reused for any data set and any prior
setting of the same ``(n_components, n_features, covariance_type)``; only
those three numbers change the graph.  The default NUTS sampler evaluates the
same log-density with bayesgmm's own kernel instead
(:mod:`bayesgmm.bayes.density`), checked against this model in the tests.

Parameterization (standardized units)
-------------------------------------
- ``w ~ Dirichlet(weights_concentration)``, shape ``(K,)``; with a hyperprior
  (``priors={"weights_concentration": "sparse"}`` or ``("gamma", a, b)``) one
  symmetric ``alpha ~ Gamma(a, b)`` (the free variable ``alpha``, log-transformed,
  first in the model) and ``w ~ Dirichlet(alpha, ..., alpha)``.
- ``mu_std ~ Normal(means_loc, means_scale)``, shape ``(K, D)``.
- ``sd_std ~ HalfNormal(sd_scale)``: shape ``(K, D)`` (full, diag), ``(K,)``
  (spherical) or ``(D,)`` (tied).
- ``cpc_u ~ Beta(a_j, a_j)`` with ``a_j = lkj_eta + (D - 2 - j) / 2`` for the
  pair ``(i, j)``, ``j < i``: the canonical partial correlations
  ``z = 2 u - 1`` of the C-vine.  Drawn this way, the correlation matrix built
  from ``z`` follows exactly ``LKJ(lkj_eta)`` (Lewandowski, Kurowicka and Joe,
  2009, "vine method"), so ``diag(sd_std) @ cholesky(corr)`` has the
  distribution of ``LKJCholeskyCov(eta, sd_dist=HalfNormal(sd_scale))``.
  PyMC's ``LKJCholeskyCov`` has no batched log-density, which is why the
  partial correlations are written out here.
- Likelihood: the observed variable ``X_obs`` (``pm.CustomDist`` on the
  standardized data) with row-wise density ``logsumexp_k [log w_k +
  log N(z_n | mu_k, Sigma_k)]``, so ``pm.sample_posterior_predictive`` and
  ``pm.compute_log_likelihood`` work on the model.  bayesgmm itself
  recomputes the pointwise log-likelihood in data units from the draws with
  NumPy (:func:`bayesgmm.posterior.pointwise_log_likelihood`), which avoids a
  second compiled graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayesgmm.bayes.spec import (
    COVARIANCE_TYPES,
    PRIOR_KEYS,
    ModelData,
    model_data,
    resolve_priors,
)
from bayesgmm.em import rounding_variance

__all__ = [
    "COVARIANCE_TYPES",
    "PRIOR_KEYS",
    "ModelData",
    "auto_reg_covar",
    "build_gmm_model",
    "model_data",
    "model_from_data",
    "resolve_priors",
]

#: Up to this many features the covariance algebra is written out entry by
#: entry (fastest to compile for small D); above, batched matrix operations.
UNROLL_MAX_FEATURES = 5

def auto_reg_covar(X: np.ndarray) -> np.ndarray:
    """Per-feature variance floor: the squared resolution of the data.

    The resolution of a feature is the smallest gap between two of its distinct
    values (0.1 for measurements to 0.1 cm); a component narrower than one
    measurement step cannot be resolved, and without a floor a HalfNormal prior
    on the standard deviations lets components collapse onto repeated values
    (the posterior is then improper).  The floor is at least ``1e-6`` times a
    robust variance of the feature (the squared normal-consistent median
    absolute deviation), so that outliers do not raise it.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.

    Returns
    -------
    ndarray of shape (n_features,)
        Floor added to the diagonal of every covariance, data units.

    Examples
    --------
    >>> auto_reg_covar(np.array([[0.1], [0.3], [0.3], [0.7]])).round(6).tolist()
    [0.04]
    """
    X = np.asarray(X, dtype=float)
    step_squared = 12.0 * rounding_variance(X, max_rows=X.shape[0])  # every row
    out = np.empty(X.shape[1])
    for j in range(X.shape[1]):
        col = X[:, j][~np.isnan(X[:, j])]  # the observed values (NaN: missing)
        # a robust spread (normal-consistent MAD, the variance when the MAD is 0): one
        # extreme outlier must not lift the floor (1e6 in two 10-sd clusters: 4950)
        mad = 1.4826 * np.median(np.abs(col - np.median(col)))
        spread = mad**2 if mad > 0 else col.var()
        out[j] = max(step_squared[j], 1e-6 * spread)
    return out


def _pair_index(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column of each strictly-lower pair ``(i, j)``, row by row."""
    rows, cols = np.tril_indices(n_features, k=-1)
    return rows, cols


def _corr_cholesky(z: Any, n_features: int) -> Any:
    """Cholesky factor of a correlation matrix from its C-vine partial correlations.

    ``z`` has the ``D (D - 1) / 2`` pairs on its last axis, row by row; the
    result has shape ``(..., D, D)``, batched like ``z[..., 0]``. Entry
    ``(i, j)`` is ``z_ij sqrt(prod_{k<j} (1 - z_ik^2))``, the diagonal
    ``sqrt(prod_{k<i} (1 - z_ik^2))``: the same construction as
    :func:`bayesgmm.bayes.params.corr_cholesky_from_cpc`, as a PyTensor graph.
    """
    D = n_features
    rows, cols = _pair_index(D)
    Zm = pt.zeros((*tuple(z.shape[:-1]), D, D))
    Zm = pt.set_subtensor(Zm[..., rows, cols], z)
    log_rem = pt.log1p(-(Zm**2))  # zero on and above the diagonal
    excl = pt.cumsum(log_rem, axis=-1) - log_rem  # sum over k < j of log(1 - z_ik^2)
    return Zm * pt.exp(0.5 * excl) + pt.exp(0.5 * pt.sum(log_rem, axis=-1))[..., None] * pt.eye(D)


def _regularized_cholesky(
    C: list[list[Any]], sd: pt.TensorVariable, reg: pt.TensorVariable, n_features: int
) -> list[list[Any]]:
    """Cholesky factor of ``diag(sd) C C^T diag(sd) + diag(reg)``, unrolled.

    ``sd`` has the features on its last axis; every entry of the result is
    batched like ``sd[..., 0]``.  The floor ``reg`` bounds every eigenvalue
    away from zero, which keeps the posterior proper (a component cannot
    collapse onto a single point or a line of points).
    """
    D = n_features

    def cov(i: int, j: int) -> Any:
        s = 0.0
        for k in range(min(i, j) + 1):
            s = s + C[i][k] * C[j][k]
        s = sd[..., i] * sd[..., j] * s
        return s + reg[i] if i == j else s

    L: list[list[Any]] = [[None] * D for _ in range(D)]
    for i in range(D):
        for j in range(i + 1):
            acc = cov(i, j)
            for k in range(j):
                acc = acc - L[i][k] * L[j][k]
            L[i][j] = pt.sqrt(acc) if i == j else acc / L[j][j]
    return L


def _mahalanobis_unrolled(
    z: Any, sd: Any, reg: Any, resid: Any, n_features: int
) -> tuple[Any, Any]:
    """Squared Mahalanobis distances and log-determinants, loops over features written out.

    Cheapest to compile for small D (every entry is an elementwise expression
    batched over components); the graph grows as D^3.
    """
    Cm = _corr_cholesky(z, n_features)
    C = [[Cm[..., i, j] if j <= i else None for j in range(n_features)]
         for i in range(n_features)]
    L = _regularized_cholesky(C, sd, reg, n_features)
    # forward substitution L y = resid, one feature row at a time (every
    # component and point at once)
    ys: list[Any] = []
    sq: Any = 0.0
    log_det: Any = 0.0
    for i in range(n_features):
        acc = resid[:, :, i]
        for j in range(i):
            acc = acc - L[i][j] * ys[j]
        ys.append(acc / L[i][i])
        sq = sq + ys[i] ** 2
        log_det = log_det + pt.log(L[i][i])
    return sq, log_det


def _mahalanobis_batched(
    z: Any, sd: Any, reg: Any, resid: Any, n_features: int
) -> tuple[Any, Any]:
    """Same as :func:`_mahalanobis_unrolled` with batched matrix operations.

    A fixed number of operations whatever D (Cholesky and triangular solve
    batched over components), so compilation does not grow with D.
    """
    A = sd[..., :, None] * _corr_cholesky(z, n_features)
    cov = pt.matmul(A, pt.swapaxes(A, -1, -2)) + pt.diag(reg)
    L = pt.linalg.cholesky(cov)
    if L.ndim == 2:  # tied: one matrix for every component
        L = pt.shape_padleft(L)
    rhs = pt.transpose(resid, (1, 2, 0))  # (K, D, N)
    y = pt.linalg.solve_triangular(L, rhs, lower=True)
    sq = pt.transpose(pt.sum(y**2, axis=1))  # (N, K)
    log_det = pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return sq, log_det


def build_gmm_model(
    X: np.ndarray,
    n_components: int,
    covariance_type: str = "full",
    priors: Mapping[str, Any] | None = None,
    reg_covar: float | np.ndarray = 1e-6,
) -> pm.Model:
    """Build the PyMC model of a Gaussian mixture with marginalized labels.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data (already validated: float, finite, 2-D).
    n_components : int
        Number of mixture components ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure of the components.
    priors : mapping or None, default=None
        Prior settings, keys among :data:`PRIOR_KEYS`:

        ============================  ===============================================
        key                           meaning (default)
        ============================  ===============================================
        ``weights_concentration``     Dirichlet alpha, float or (K,) (1.0), or a
                                      hyperprior: ``"sparse"`` (Gamma(10, 10 K)) or
                                      ``("gamma", shape, rate)``
        ``means_loc``                 Normal centre of the means (data mean)
        ``means_scale``               Normal scale of the means (2 x data sd)
        ``sd_scale``                  HalfNormal scale of the component sds (data sd)
        ``lkj_eta``                   LKJ shape of the correlations (2.0)
        ============================  ===============================================

    reg_covar : float or ndarray of shape (n_features,), default=1e-6
        Non-negative floor added to the diagonal of every covariance (data
        units), as in scikit-learn; it keeps the posterior proper (see
        :func:`auto_reg_covar` for a data-based choice).

    Returns
    -------
    pymc.Model
        Free variables ``alpha`` (with a concentration hyperprior; data container
        ``concentration_prior`` holds its shape and rate), ``w`` (K,; absent
        when K = 1), ``mu_std`` (K, D), ``sd_std`` and, for
        ``full``/``tied`` with ``D > 1``, ``cpc_u``; data containers ``X_std``,
        ``weights_concentration``, ``means_loc``, ``means_scale``, ``sd_scale``,
        ``lkj_eta``, ``reg_diag``, and the standardization ``center`` and
        ``scale``; the observed variable ``X_obs`` (the standardized data).

    Raises
    ------
    ValueError
        On an unknown ``covariance_type`` or prior name, or a non-positive
        concentration or scale.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> model = build_gmm_model(rng.normal(size=(20, 2)), 2, "diag")
    >>> sorted(v.name for v in model.free_RVs)
    ['mu_std', 'sd_std', 'w']
    """
    X = np.asarray(X, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features); got shape {X.shape}.")
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}."
        )
    K = int(n_components)
    if K < 1:
        raise ValueError(f"n_components must be an integer >= 1; got {n_components!r}.")
    return model_from_data(model_data(X, K, priors, reg_covar, covariance_type), K,
                           covariance_type)


def model_from_data(md: ModelData, n_components: int, covariance_type: str) -> pm.Model:
    """The PyMC model for resolved data and priors (:class:`~bayesgmm.bayes.spec.ModelData`).

    :func:`build_gmm_model` resolves the user's settings and calls this;
    :func:`bayesgmm.bayes.inference.kernel_mismatch` calls it to rebuild the
    model a given one should equal.

    Parameters
    ----------
    md : ModelData
        Standardized data, standardization and priors.
    n_components : int
        ``K``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure.

    Returns
    -------
    pymc.Model
        As :func:`build_gmm_model`.
    """
    K, D = int(n_components), md.X_std.shape[1]
    n_pairs = D * (D - 1) // 2

    values = md.data_dict()
    with pm.Model(check_bounds=False) as model:
        # the standardization, kept with the model (not in its log-density)
        pm.Data("center", md.center)
        pm.Data("scale", md.scale)
        # missing entries (NaN) are held at 0 and marked in "observed_mask": the likelihood
        # of a row is the density of its observed part (the missing part is marginalised)
        Z = pm.Data("X_std", values["X_std"])
        mask = (pm.Data("observed_mask", values["observed_mask"])
                if "observed_mask" in values else None)
        alpha = pm.Data("weights_concentration", md.weights_concentration)
        m_loc = pm.Data("means_loc", md.means_loc)
        m_scale = pm.Data("means_scale", md.means_scale)
        s_scale = pm.Data("sd_scale", md.sd_scale)
        eta = pm.Data("lkj_eta", np.asarray(md.lkj_eta, dtype=float))

        if md.concentration_prior is not None:
            # a sampled symmetric concentration (sparse finite mixture): alpha ~ Gamma
            hyper = pm.Data("concentration_prior", md.concentration_prior)
            alpha = pm.Gamma("alpha", alpha=hyper[0], beta=hyper[1]) * pt.ones((K,))
        # one component: the weight is 1, not a random variable
        w = pm.Dirichlet("w", a=alpha, shape=(K,)) if K > 1 else pt.ones((1,))
        mu = pm.Normal("mu_std", mu=m_loc, sigma=m_scale, shape=(K, D))

        if covariance_type == "spherical":
            sd = pm.HalfNormal("sd_std", sigma=pt.mean(s_scale), shape=(K,))
        elif covariance_type == "tied":
            sd = pm.HalfNormal("sd_std", sigma=s_scale, shape=(D,))
        else:
            sd = pm.HalfNormal("sd_std", sigma=s_scale, shape=(K, D))

        reg = pm.Data("reg_diag", md.reg_diag)  # (D,) floor added to every variance
        params = [w, mu, sd, reg]
        sd_sig = {"spherical": "(k)", "tied": "(d)"}.get(covariance_type, "(k,d)")
        signature = f"(k),(k,d),{sd_sig},(d)"
        if covariance_type in ("full", "tied") and D > 1:
            _, cols = _pair_index(D)
            a = eta + (D - 2 - cols.astype(float)) / 2.0
            batch = (K, n_pairs) if covariance_type == "full" else (n_pairs,)
            params.append(pm.Beta("cpc_u", alpha=a, beta=a, shape=batch))
            signature += ",(k,p)" if covariance_type == "full" else ",(p)"

        if mask is None:
            def logp(value: Any, *theta: Any) -> Any:
                return _row_log_likelihood(value, *theta, covariance_type=covariance_type)

            def random(*theta: Any, rng: np.random.Generator | None = None,
                       size: tuple[int, ...] | None = None) -> np.ndarray:
                return _simulate_standardized(*theta, covariance_type=covariance_type,
                                              rng=rng, size=size)
        else:
            params.append(mask)
            signature += ",(d)"

            def logp(value: Any, *theta: Any) -> Any:
                *theta, observed = theta
                return _observed_row_log_likelihood(value, observed, *theta,
                                                    covariance_type=covariance_type)

            def random(*theta: Any, rng: np.random.Generator | None = None,
                       size: tuple[int, ...] | None = None) -> np.ndarray:
                # complete rows (the mask only says which entries the data lack)
                return _simulate_standardized(*theta[:-1], covariance_type=covariance_type,
                                              rng=rng, size=size)

        # the labels summed out: one observed row-wise density, so PyMC's posterior
        # predictive and pointwise log-likelihood work on this model
        pm.CustomDist("X_obs", *params, logp=logp, random=random,
                      signature=f"{signature}->(d)", observed=Z)
    return model


def _row_log_likelihood(value: Any, w: Any, mu: Any, sd: Any, reg: Any, *cpc_u: Any,
                        covariance_type: str) -> Any:
    """``log sum_k w_k N(z_n | mu_k, Sigma_k)`` of every row ``z_n`` (standardized units)."""
    # PyMC hands the parameters over with the rows' batch axis broadcast in front (size 1)
    w, mu, reg = _core(w, 1), _core(mu, 2), _core(reg, 1)
    sd = _core(sd, 1 if covariance_type in ("spherical", "tied") else 2)
    cpc_u = tuple(_core(u, 2 if covariance_type == "full" else 1) for u in cpc_u)
    K, D = (int(n) for n in mu.type.shape)
    resid = value[:, None, :] - mu[None, :, :]  # (N, K, D)
    if cpc_u:
        z = 2.0 * cpc_u[0] - 1.0
        sd_b = sd if covariance_type == "full" else pt.shape_padleft(sd)  # (K|1, D)
        if D <= UNROLL_MAX_FEATURES:
            sq, log_det = _mahalanobis_unrolled(z, sd_b, reg, resid, D)
        else:
            sq, log_det = _mahalanobis_batched(z, sd_b, reg, resid, D)
        log_det = log_det * pt.ones((K,))
    else:
        if covariance_type == "spherical":
            var = pt.shape_padright(sd**2) + reg[None, :]  # (K, D)
        elif covariance_type == "tied":
            var = pt.shape_padleft(sd**2 + reg) * pt.ones((K, 1))
        else:
            var = sd**2 + reg[None, :]
        sq = pt.sum(resid**2 / var[None, :, :], axis=-1)
        log_det = 0.5 * pt.sum(pt.log(var), axis=-1)
    log_comp = pt.log(w)[None, :] - 0.5 * sq - log_det[None, :] - 0.5 * D * np.log(2.0 * np.pi)
    return pt.logsumexp(log_comp, axis=1)


def _observed_row_log_likelihood(value: Any, observed: Any, w: Any, mu: Any, sd: Any,
                                 reg: Any, *cpc_u: Any, covariance_type: str) -> Any:
    """``log sum_k w_k N(z_nO | mu_kO, Sigma_kOO)``: the density of each row's observed part.

    Row ``n``'s covariance is replaced by ``S_nk = diag(o_n) Sigma_k diag(o_n) +
    diag(1 - o_n)`` (``o_n`` its 0/1 mask): after a permutation, block-diagonal
    ``(Sigma_kOO, I)``, so its log-determinant is that of ``Sigma_kOO``, and with
    the residual zero in the missing coordinates its quadratic form is the
    observed part's. Written with batched matrices (one Cholesky factor per row
    and component): the graph does not grow with the number of patterns.
    """
    w, mu, reg = _core(w, 1), _core(mu, 2), _core(reg, 1)
    sd = _core(sd, 1 if covariance_type in ("spherical", "tied") else 2)
    cpc_u = tuple(_core(u, 2 if covariance_type == "full" else 1) for u in cpc_u)
    K, D = (int(n) for n in mu.type.shape)
    if covariance_type == "spherical":
        A = pt.shape_padright(pt.shape_padright(sd)) * pt.eye(D)  # (K, D, D)
    elif covariance_type == "diag":
        A = pt.shape_padright(sd) * pt.eye(D)
    elif covariance_type == "tied":
        C = _corr_cholesky(2.0 * cpc_u[0] - 1.0, D) if cpc_u else pt.eye(D)
        A = pt.shape_padleft(pt.shape_padright(sd) * C) * pt.ones((K, 1, 1))
    else:
        C = _corr_cholesky(2.0 * cpc_u[0] - 1.0, D) if cpc_u else pt.ones((K, 1, 1))
        A = pt.shape_padright(sd) * C
    cov = pt.matmul(A, pt.swapaxes(A, -1, -2)) + pt.diag(reg)  # (K, D, D)
    o = observed  # (N, D)
    outer = o[:, :, None] * o[:, None, :]  # (N, D, D)
    S = cov[None] * outer[:, None] + (pt.eye(D) * (1.0 - o)[:, :, None])[:, None]  # (N,K,D,D)
    L = pt.linalg.cholesky(S)
    resid = (value[:, None, :] - mu[None, :, :]) * o[:, None, :]  # (N, K, D), 0 if missing
    y = pt.linalg.solve_triangular(L, resid[..., None], lower=True)[..., 0]
    sq = pt.sum(y**2, axis=-1)
    log_det = pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)  # 0.5 log det
    n_obs = pt.sum(o, axis=-1)  # observed entries per row
    log_comp = (pt.log(w)[None, :] - 0.5 * sq - log_det
                - 0.5 * n_obs[:, None] * np.log(2.0 * np.pi))
    return pt.logsumexp(log_comp, axis=1)


def _core(x: Any, ndim: int) -> Any:
    """``x`` without leading broadcast axes beyond its ``ndim`` core axes."""
    extra = x.type.ndim - ndim
    return pt.squeeze(x, axis=tuple(range(extra))) if extra > 0 else x


def _simulate_standardized(w: np.ndarray, mu: np.ndarray, sd: np.ndarray, reg: np.ndarray,
                           *cpc_u: np.ndarray, covariance_type: str,
                           rng: np.random.Generator | None,
                           size: tuple[int, ...] | None) -> np.ndarray:
    """Rows from the mixture at one parameter value, standardized units (PyMC's ``random``)."""
    from bayesgmm.bayes.params import params_from_raw
    from bayesgmm.bayes.spec import simulate_mixture

    K, D = mu.shape[-2:]
    raw = {"w": w, "mu_std": mu, "sd_std": sd, **({"cpc_u": cpc_u[0]} if cpc_u else {})}
    weights, means, covs = params_from_raw(raw, covariance_type=covariance_type,
                                           n_components=K, center=np.zeros(D),
                                           scale=np.ones(D), reg_diag=reg)
    n = int(np.prod(size)) if size else 1
    rows = simulate_mixture(weights, means, covs, n, rng)
    return rows.reshape((*size, D)) if size else rows[0]
