"""The Bayesian mixture model, specified once with NumPy only.

What every route of :class:`~bayesgmm.BayesGMM` shares: the prior settings
(:data:`PRIOR_KEYS`, checked by :func:`resolve_priors`), the data in
standardized units with the priors expressed in them (:class:`ModelData`,
built by :func:`model_data`), the flat unconstrained layout of the
parameters (:func:`parameter_layout`), forward draws of the prior
(:func:`sample_prior`, with :func:`prior_model_data` for a prior that does not
depend on the data) and of data given the parameters (:func:`simulate_mixture`).  The PyMC model
(:mod:`bayesgmm.bayes.model`), the fast log-density
(:mod:`bayesgmm.bayes.density`), ADVI on it (:mod:`bayesgmm.bayes.vi`) and the
parameter transforms read them from here, so importing this module (or the
kernel) loads no PyMC.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from bayesgmm._constants import COVARIANCE_TYPES
from bayesgmm.bayes.params import params_from_raw

__all__ = [
    "COVARIANCE_TYPES",
    "PRIOR_KEYS",
    "SPARSE_SHAPE",
    "ModelData",
    "concentration_hyperprior",
    "model_data",
    "parameter_layout",
    "prior_model_data",
    "resolve_priors",
    "sample_prior",
    "sample_prior_raw",
    "simulate_mixture",
]

#: Prior keys accepted by ``priors=``, with a one-line meaning each.
PRIOR_KEYS: dict[str, str] = {
    "weights_concentration": (
        "Dirichlet concentration of the weights: float > 0 or array (n_components,), or a "
        "hyperprior on one symmetric concentration alpha: \"sparse\" (alpha ~ Gamma(10, "
        "10 n_components), Malsiner-Walli et al. 2016) or (\"gamma\", shape, rate); default 1.0"
    ),
    "means_loc": "centre of the Normal prior of the means, data units; default: the data mean",
    "means_scale": (
        "scale of the Normal prior of the means, data units, > 0; default: 2 x the data sd"
    ),
    "sd_scale": (
        "scale of the HalfNormal prior of the component standard deviations, data units, > 0;"
        " default: the data sd"
    ),
    "lkj_eta": "LKJ shape of the correlations (full, tied), float > 0; default 2.0",
}

_DEFAULT_MEANS_SCALE = 2.0
_DEFAULT_LKJ_ETA = 2.0
_DEFAULT_CONCENTRATION = 1.0
#: Shape ``a`` of the "sparse" hyperprior ``alpha ~ Gamma(a, a K)`` (Malsiner-Walli,
#: Fruhwirth-Schnatter and Grun 2016, section 2.2): prior mean ``1 / K``, sd ``1 / (K sqrt(a))``.
SPARSE_SHAPE = 10.0


def concentration_hyperprior(value: Any, n_components: int) -> np.ndarray | None:
    """The Gamma hyperprior ``(shape, rate)`` of a sampled concentration, or None if fixed.

    Parameters
    ----------
    value : float, array, str or tuple
        The ``weights_concentration`` setting: ``"sparse"`` (``Gamma(10, 10 K)``),
        ``("gamma", shape, rate)``, or a fixed float/array (returns None).
    n_components : int
        ``K``.

    Returns
    -------
    ndarray of shape (2,) or None
        ``[shape, rate]`` of ``alpha ~ Gamma(shape, rate)`` (rate: inverse scale).

    Raises
    ------
    ValueError
        On an unknown string, a malformed tuple, non-positive shape or rate, or
        a sampled concentration with one component.

    Examples
    --------
    >>> concentration_hyperprior("sparse", 10).tolist()
    [10.0, 100.0]
    >>> concentration_hyperprior(("gamma", 2, 4), 3).tolist()
    [2.0, 4.0]
    >>> concentration_hyperprior(0.5, 3) is None
    True
    """
    if isinstance(value, str):
        if value != "sparse":
            raise ValueError(
                f"priors['weights_concentration'] as a string must be 'sparse'; got {value!r}. "
                "Give a float, an array, 'sparse' or ('gamma', shape, rate)."
            )
        out = np.array([SPARSE_SHAPE, SPARSE_SHAPE * int(n_components)])
    elif isinstance(value, tuple | list) and len(value) > 0 and isinstance(value[0], str):
        if value[0] != "gamma" or len(value) != 3:
            raise ValueError(
                "priors['weights_concentration'] as a tuple must be ('gamma', shape, rate); "
                f"got {value!r}."
            )
        try:
            out = np.array([float(value[1]), float(value[2])])
        except (TypeError, ValueError):
            raise ValueError(
                "priors['weights_concentration'] = ('gamma', shape, rate) needs two numbers; "
                f"got {value!r}."
            ) from None
        if not np.all(np.isfinite(out)) or np.any(out <= 0):
            raise ValueError(
                "priors['weights_concentration'] = ('gamma', shape, rate) needs shape > 0 and "
                f"rate > 0; got {value!r}."
            )
    else:
        return None
    if int(n_components) < 2:
        raise ValueError(
            "priors['weights_concentration'] with a hyperprior needs n_components >= 2 (one "
            f"component has no weights); got n_components={n_components}."
        )
    return out


@dataclass(frozen=True)
class ModelData:
    """Values of the :func:`pymc.Data` containers of a model.

    Attributes
    ----------
    X_std : ndarray of shape (n_samples, n_features)
        Standardized data ``(X - center) / scale``; NaN marks a missing entry
        (the model then marginalises it, see :mod:`bayesgmm.bayes.model`).
    center : ndarray of shape (n_features,)
        Data mean used for standardizing.
    scale : ndarray of shape (n_features,)
        Data standard deviation used for standardizing (1 where it is 0).
    weights_concentration : ndarray of shape (n_components,)
        Dirichlet concentration.
    means_loc : ndarray of shape (n_features,)
        Prior centre of the means, standardized units.
    means_scale : ndarray of shape (n_features,)
        Prior scale of the means, standardized units.
    sd_scale : ndarray of shape (n_features,)
        HalfNormal scale of the standard deviations, standardized units.
    lkj_eta : float
        LKJ shape.
    reg_diag : ndarray of shape (n_features,)
        ``reg_covar`` in standardized units, added to every variance.
    concentration_prior : ndarray of shape (2,) or None, default=None
        ``[shape, rate]`` when the symmetric concentration ``alpha`` is sampled
        (``alpha ~ Gamma(shape, rate)``, ``w ~ Dirichlet(alpha, ..., alpha)``);
        ``weights_concentration`` then holds the prior mean, for display only.
    """

    X_std: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    weights_concentration: np.ndarray
    means_loc: np.ndarray
    means_scale: np.ndarray
    sd_scale: np.ndarray
    lkj_eta: float
    reg_diag: np.ndarray
    concentration_prior: np.ndarray | None = None

    @property
    def has_missing(self) -> bool:
        """Whether the data have missing entries (NaN in ``X_std``)."""
        return bool(np.isnan(self.X_std).any())

    def data_dict(self) -> dict[str, np.ndarray]:
        """Return the values keyed by the names of the model's data containers.

        Missing entries (NaN in ``X_std``) are held at 0 in the ``X_std``
        container and marked in an ``observed_mask`` container (1 observed, 0
        missing), which only data with missing entries have.

        Returns
        -------
        dict
            ``{name: value}`` for ``X_std``, ``weights_concentration``,
            ``means_loc``, ``means_scale``, ``sd_scale``, ``lkj_eta``,
            ``reg_diag``, with missing entries ``observed_mask`` and, with a
            sampled concentration, ``concentration_prior``.
        """
        missing = np.isnan(self.X_std)
        values = {
            "X_std": np.where(missing, 0.0, self.X_std),
            "weights_concentration": self.weights_concentration,
            "means_loc": self.means_loc,
            "means_scale": self.means_scale,
            "sd_scale": self.sd_scale,
            "lkj_eta": np.asarray(self.lkj_eta, dtype=float),
            "reg_diag": self.reg_diag,
        }
        if missing.any():
            values["observed_mask"] = (~missing).astype(float)
        if self.concentration_prior is not None:
            values["concentration_prior"] = np.asarray(self.concentration_prior, dtype=float)
        return values


def _positive_array(name: str, value: Any, size: int, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim == 0:
        arr = np.full(size, float(arr))
    if arr.shape != (size,):
        raise ValueError(
            f"priors[{name!r}] must be a float or an array of shape ({size},) ({what}); "
            f"got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(
            f"priors[{name!r}] must be finite and > 0; got {value!r}. "
            "Concentrations and scales are positive numbers."
        )
    return arr


def resolve_priors(
    priors: Mapping[str, Any] | None, n_components: int, n_features: int
) -> dict[str, Any]:
    """Check a ``priors=`` mapping and fill in the defaults.

    Parameters
    ----------
    priors : mapping or None
        User settings; keys must be among :data:`PRIOR_KEYS`.
    n_components : int
        Number of mixture components.
    n_features : int
        Number of features.

    Returns
    -------
    dict
        The given settings as float arrays (``weights_concentration`` of shape
        ``(n_components,)``, ``means_loc``, ``means_scale`` and ``sd_scale`` of
        shape ``(n_features,)`` or None for the data-based default,
        ``lkj_eta`` a float), and ``concentration_prior``: ``[shape, rate]``
        of a sampled concentration (:func:`concentration_hyperprior`) or None.

    Raises
    ------
    ValueError
        On an unknown key or a non-positive concentration or scale.

    Examples
    --------
    >>> resolve_priors({"lkj_eta": 1.0}, 2, 2)["lkj_eta"]
    1.0
    """
    priors = {} if priors is None else dict(priors)
    if not isinstance(priors, dict):
        raise ValueError(f"priors must be a mapping or None; got {type(priors).__name__}.")
    unknown = sorted(set(priors) - set(PRIOR_KEYS))
    if unknown:
        raise ValueError(
            f"Unknown prior name(s) {unknown} in priors; expected keys among "
            f"{sorted(PRIOR_KEYS)}."
        )
    conc = priors.get("weights_concentration", _DEFAULT_CONCENTRATION)
    hyper = concentration_hyperprior(conc, n_components)
    out: dict[str, Any] = {
        "weights_concentration": (
            np.full(n_components, hyper[0] / hyper[1]) if hyper is not None
            else _positive_array("weights_concentration", conc, n_components,
                                 "one per component")
        ),
        "concentration_prior": hyper,
        "means_loc": None,
        "means_scale": None,
        "sd_scale": None,
        "lkj_eta": _DEFAULT_LKJ_ETA,
    }
    if priors.get("means_loc") is not None:
        loc = np.asarray(priors["means_loc"], dtype=float)
        loc = np.full(n_features, float(loc)) if loc.ndim == 0 else loc
        if loc.shape != (n_features,) or not np.all(np.isfinite(loc)):
            raise ValueError(
                f"priors['means_loc'] must be a finite float or array of shape ({n_features},); "
                f"got {priors['means_loc']!r}."
            )
        out["means_loc"] = loc
    for key in ("means_scale", "sd_scale"):
        if priors.get(key) is not None:
            out[key] = _positive_array(key, priors[key], n_features, "one per feature")
    if "lkj_eta" in priors:
        eta = priors["lkj_eta"]
        if not np.isscalar(eta) or not np.isfinite(float(eta)) or float(eta) <= 0:
            raise ValueError(f"priors['lkj_eta'] must be a float > 0; got {eta!r}.")
        out["lkj_eta"] = float(eta)
    return out


def model_data(
    X: np.ndarray,
    n_components: int,
    priors: Mapping[str, Any] | None = None,
    reg_covar: float | np.ndarray = 1e-6,
    covariance_type: str = "full",
) -> ModelData:
    """Standardize the data and express the priors in standardized units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data (already validated).
    n_components : int
        Number of mixture components.
    priors : mapping or None, default=None
        See :data:`PRIOR_KEYS`.
    reg_covar : float or ndarray of shape (n_features,), default=1e-6
        Non-negative floor added to the diagonal of every covariance, data units.
    covariance_type : str, default="full"
        For ``"spherical"`` every feature is divided by the same scale (the
        root mean variance), so that spherical in standardized units is
        spherical in data units.

    Returns
    -------
    ModelData
        Values for the model's data containers.

    Examples
    --------
    >>> md = model_data(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 8.0]]), 2)
    >>> md.X_std.mean(axis=0).round(12).tolist()
    [0.0, 0.0]
    """
    X = np.asarray(X, dtype=float)
    n_features = X.shape[1]
    reg = np.broadcast_to(np.asarray(reg_covar, dtype=float), (n_features,))
    if not np.all(np.isfinite(reg)) or np.any(reg < 0):
        raise ValueError(f"reg_covar must be >= 0 (float or one per feature); got {reg_covar!r}.")
    p = resolve_priors(priors, n_components, n_features)
    center = np.nanmean(X, axis=0)  # NaN: a missing entry; moments of the observed values
    scale = np.nanstd(X, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    if covariance_type == "spherical":
        scale = np.full(n_features, np.sqrt(np.mean(scale**2)))
    loc = np.zeros(n_features) if p["means_loc"] is None else (p["means_loc"] - center) / scale
    mscale = (
        np.full(n_features, _DEFAULT_MEANS_SCALE)
        if p["means_scale"] is None
        else p["means_scale"] / scale
    )
    sscale = np.ones(n_features) if p["sd_scale"] is None else p["sd_scale"] / scale
    return ModelData(
        X_std=(X - center) / scale,
        center=center,
        scale=scale,
        weights_concentration=p["weights_concentration"],
        means_loc=loc,
        means_scale=mscale,
        sd_scale=sscale,
        lkj_eta=p["lkj_eta"],
        reg_diag=reg / scale**2,
        concentration_prior=p["concentration_prior"],
    )


def _check_covariance_type(covariance_type: Any) -> str:
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}."
        )
    return str(covariance_type)


def parameter_layout(
    n_components: int, n_features: int, covariance_type: str,
    sampled_concentration: bool = False,
) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the unconstrained variables, in the model's order.

    Parameters
    ----------
    n_components : int
        ``K``.
    n_features : int
        ``D``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure.
    sampled_concentration : bool, default=False
        The Dirichlet concentration is a parameter (``alpha``, log-transformed),
        placed first as in the PyMC model.

    Returns
    -------
    list of (str, tuple)
        PyMC value-variable names (``alpha_log__`` with a sampled
        concentration, ``w_simplex__``, ``mu_std``, ``sd_std_log__``,
        ``cpc_u_logodds__``) with their shapes, in the order of
        ``model.free_RVs``.

    Examples
    --------
    >>> [name for name, shape in parameter_layout(3, 2, "full")]
    ['w_simplex__', 'mu_std', 'sd_std_log__', 'cpc_u_logodds__']
    >>> parameter_layout(3, 1, "diag", sampled_concentration=True)[0]
    ('alpha_log__', ())
    """
    _check_covariance_type(covariance_type)
    K, D = int(n_components), int(n_features)
    out: list[tuple[str, tuple[int, ...]]] = []
    if sampled_concentration:
        out.append(("alpha_log__", ()))
    if K > 1:
        out.append(("w_simplex__", (K - 1,)))
    out.append(("mu_std", (K, D)))
    sd_shape = {"spherical": (K,), "tied": (D,)}.get(covariance_type, (K, D))
    out.append(("sd_std_log__", sd_shape))
    n_pairs = D * (D - 1) // 2
    if covariance_type in ("full", "tied") and D > 1:
        out.append(("cpc_u_logodds__", (K, n_pairs) if covariance_type == "full" else (n_pairs,)))
    return out


# ----------------------------------------------------------------------
# forward simulation: the prior, and data given the parameters
# ----------------------------------------------------------------------


def prior_model_data(
    n_components: int,
    n_features: int,
    priors: Mapping[str, Any],
    reg_covar: float | np.ndarray,
    covariance_type: str = "full",
) -> ModelData:
    """The prior settings of a model whose prior does not depend on the data.

    With every prior key given in data units and a fixed ``reg_covar``, the
    prior of ``BayesGMM`` in data units is the same whatever the data: the
    model divides each setting by the data's scale and multiplies the draws
    back.  This returns that prior as a :class:`ModelData` with no data
    (``center = 0``, ``scale = 1``, ``X_std`` of shape ``(0, D)``), for
    :func:`sample_prior`.

    Parameters
    ----------
    n_components : int
        ``K``.
    n_features : int
        ``D``.
    priors : mapping
        ``weights_concentration``, ``means_loc``, ``means_scale``,
        ``sd_scale`` and, for ``full`` and ``tied``, ``lkj_eta`` (see
        :data:`PRIOR_KEYS`; floats or arrays).
    reg_covar : float or ndarray of shape (n_features,)
        Floor added to every variance, data units.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure (decides whether ``lkj_eta`` is needed).

    Returns
    -------
    ModelData

    Raises
    ------
    ValueError
        If a needed prior key is missing (its default would depend on the
        data), a setting is invalid or ``covariance_type`` is unknown.

    Examples
    --------
    >>> md = prior_model_data(2, 1, dict(weights_concentration=2.0, means_loc=0.0,
    ...                       means_scale=3.0, sd_scale=1.0), 1e-6, "diag")
    >>> md.means_scale.tolist(), md.X_std.shape
    ([3.0], (0, 1))
    """
    covariance_type = _check_covariance_type(covariance_type)
    required = ["weights_concentration", "means_loc", "means_scale", "sd_scale"]
    if covariance_type in ("full", "tied"):
        required.append("lkj_eta")
    missing = [key for key in required if priors.get(key) is None]
    if missing:
        raise ValueError(
            f"priors must give every key {required} so that the prior does not "
            f"depend on the data; missing {missing}."
        )
    K, D = int(n_components), int(n_features)
    p = resolve_priors(priors, K, D)
    reg = np.broadcast_to(np.asarray(reg_covar, dtype=float), (D,)).copy()
    if not np.all(np.isfinite(reg)) or np.any(reg < 0):
        raise ValueError(f"reg_covar must be >= 0 (float or one per feature); got {reg_covar!r}.")
    return ModelData(
        X_std=np.empty((0, D)),
        center=np.zeros(D),
        scale=np.ones(D),
        weights_concentration=p["weights_concentration"],
        means_loc=p["means_loc"],
        means_scale=p["means_scale"],
        sd_scale=p["sd_scale"],
        lkj_eta=p["lkj_eta"],
        reg_diag=reg,
        concentration_prior=p["concentration_prior"],
    )


def sample_prior_raw(
    md: ModelData,
    covariance_type: str,
    size: int,
    random_state: int | np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Independent draws of the model's free variables from their prior.

    The variables of :mod:`bayesgmm.bayes.model`, standardized units:
    with a sampled concentration ``alpha ~ Gamma(shape, rate)``
    (``md.concentration_prior``) and ``w ~ Dirichlet(alpha, ..., alpha)``,
    otherwise ``w ~ Dirichlet(weights_concentration)`` (absent when K = 1),
    ``mu_std ~ Normal(means_loc, means_scale)``, ``sd_std ~
    HalfNormal(sd_scale)`` (``mean(sd_scale)`` for ``spherical``; shape
    ``(K, D)``, ``(D,)`` tied, ``(K,)`` spherical) and, for ``full`` and
    ``tied`` with ``D > 1``, the C-vine variables ``cpc_u ~ Beta(a_j, a_j)``,
    ``a_j = lkj_eta + (D - 2 - j) / 2`` for the pair ``(i, j)``, whose
    correlation matrix is ``LKJ(lkj_eta)``.

    Parameters
    ----------
    md : ModelData
        Prior settings (:func:`model_data` or :func:`prior_model_data`); K is
        ``md.weights_concentration.size``, D is ``md.means_loc.size``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure.
    size : int
        Number of draws (leading axis of every array).
    random_state : int, Generator or None, default=None
        Seed.

    Returns
    -------
    dict
        ``{name: ndarray of shape (size, ...)}``, the inputs of
        :func:`bayesgmm.bayes.params.params_from_raw`.

    Examples
    --------
    >>> md = prior_model_data(2, 3, dict(weights_concentration=1.0, means_loc=0.0,
    ...                       means_scale=1.0, sd_scale=1.0, lkj_eta=2.0), 0.0)
    >>> {k: v.shape for k, v in sample_prior_raw(md, "full", 4, 0).items()}
    {'w': (4, 2), 'mu_std': (4, 2, 3), 'sd_std': (4, 2, 3), 'cpc_u': (4, 2, 3)}
    """
    covariance_type = _check_covariance_type(covariance_type)
    rng = np.random.default_rng(random_state)
    K, D = md.weights_concentration.size, md.means_loc.size
    size = int(size)
    raw: dict[str, np.ndarray] = {}
    if K > 1 and md.concentration_prior is not None:
        shape, rate = md.concentration_prior
        raw["alpha"] = rng.gamma(shape, 1.0 / rate, size=size)
        # Dirichlet(alpha, ..., alpha) by normalised Gamma(alpha) draws; tiny alpha
        # underflows to 0 in every component: those draws put all mass on the largest
        # log-Gamma (Gamma(a) = Gamma(a + 1) U^(1/a), drawn on the log scale)
        log_g = (np.log(rng.gamma(raw["alpha"][:, None] + 1.0, size=(size, K)))
                 + np.log(rng.uniform(size=(size, K))) / raw["alpha"][:, None])
        g = np.exp(log_g - log_g.max(axis=1, keepdims=True))
        raw["w"] = g / g.sum(axis=1, keepdims=True)
    elif K > 1:
        raw["w"] = rng.dirichlet(md.weights_concentration, size=size)
    raw["mu_std"] = md.means_loc + md.means_scale * rng.standard_normal((size, K, D))
    if covariance_type == "spherical":
        raw["sd_std"] = np.abs(float(np.mean(md.sd_scale)) * rng.standard_normal((size, K)))
    else:
        sd_shape = (D,) if covariance_type == "tied" else (K, D)
        raw["sd_std"] = np.abs(md.sd_scale * rng.standard_normal((size, *sd_shape)))
    if covariance_type in ("full", "tied") and D > 1:
        cols = np.tril_indices(D, k=-1)[1]
        a = float(md.lkj_eta) + (D - 2 - cols) / 2.0
        batch = (K, a.size) if covariance_type == "full" else (a.size,)
        raw["cpc_u"] = rng.beta(a, a, size=(size, *batch))
    return raw


def sample_prior(
    md: ModelData,
    covariance_type: str,
    size: int,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mixture parameters in data units drawn from the model's prior.

    :func:`sample_prior_raw` mapped by
    :func:`bayesgmm.bayes.params.params_from_raw` (the C-vine map and the
    standardization of ``md``).  With :func:`prior_model_data` the prior in
    data units is (all draws independent):

    - ``w ~ Dirichlet(alpha)`` and ``mu_kd ~ Normal(means_loc_d, means_scale_d)``;
    - ``full``: ``sd_kd ~ HalfNormal(sd_scale_d)``, ``Omega_k ~ LKJ(lkj_eta)``
      per component, ``Sigma_k = diag(sd_k) Omega_k diag(sd_k) + reg_covar I``;
    - ``tied``: one ``sd_d ~ HalfNormal(sd_scale_d)`` and one ``Omega ~
      LKJ(lkj_eta)`` shared by every component;
    - ``diag``: ``Sigma_k = diag(sd_k^2) + reg_covar I``;
    - ``spherical``: ``Sigma_k = (sd_k^2 + reg_covar) I`` with ``sd_k ~
      HalfNormal(mean_d sd_scale_d)`` (the model divides every feature by the
      same scale and uses the mean of the standardized ``sd_scale``).

    Parameters
    ----------
    md : ModelData
        Prior settings and standardization.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure.
    size : int
        Number of draws.
    random_state : int, Generator or None, default=None
        Seed.

    Returns
    -------
    weights : ndarray of shape (size, K)
    means : ndarray of shape (size, K, D)
    covariances : ndarray of shape (size, K, D, D)
        Full matrices whatever ``covariance_type``.

    Examples
    --------
    >>> pri = dict(weights_concentration=2.0, means_loc=0.0, means_scale=3.0,
    ...            sd_scale=1.0, lkj_eta=2.0)
    >>> w, m, c = sample_prior(prior_model_data(2, 2, pri, 1e-9), "full", 5, random_state=0)
    >>> w.shape, m.shape, c.shape
    ((5, 2), (5, 2, 2), (5, 2, 2, 2))
    """
    raw = sample_prior_raw(md, covariance_type, size, random_state)
    return params_from_raw(raw, covariance_type=covariance_type,
                           n_components=md.weights_concentration.size, center=md.center,
                           scale=md.scale, reg_diag=md.reg_diag)


def simulate_mixture(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    n_samples: int,
    random_state: int | np.random.Generator | None = None,
    return_labels: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Draw observations from Gaussian mixtures, one data set per parameter set.

    For each parameter set (leading axes), ``n_samples`` labels are drawn
    with probabilities ``weights / weights.sum()`` and each row is
    ``mu_z + L_z e`` with ``L_z`` the Cholesky factor of ``Sigma_z`` and ``e``
    standard normal.  Parameter sets are simulated one after the other from
    the same generator.

    Parameters
    ----------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, D)
    covariances : ndarray of shape (..., K, D, D)
        Full matrices.
    n_samples : int
        Rows per data set.
    random_state : int, Generator or None, default=None
        Seed.
    return_labels : bool, default=False
        Also return the component of every row.

    Returns
    -------
    ndarray of shape (..., n_samples, D)
        The rows; with ``return_labels``, a tuple ``(rows, labels)`` with
        labels of shape ``(..., n_samples)``.

    Examples
    --------
    >>> simulate_mixture(np.array([1.0]), np.zeros((1, 2)), np.eye(2)[None], 4, 0).shape
    (4, 2)
    >>> simulate_mixture(np.full((3, 2), 0.5), np.zeros((3, 2, 1)), np.ones((3, 2, 1, 1)),
    ...                  5, 0).shape
    (3, 5, 1)
    """
    rng = np.random.default_rng(random_state)
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    K, D = means.shape[-2:]
    batch = weights.shape[:-1]
    w = weights.reshape(-1, K)
    m = means.reshape(-1, K, D)
    c = covariances.reshape(-1, K, D, D)
    n = int(n_samples)
    out = np.empty((w.shape[0], n, D))
    labels = np.empty((w.shape[0], n), dtype=int)
    for i in range(w.shape[0]):
        z = labels[i] = rng.choice(K, size=n, p=w[i] / w[i].sum())
        chol = np.linalg.cholesky(c[i])
        out[i] = m[i][z] + np.einsum("nab,nb->na", chol[z], rng.standard_normal((n, D)))
    rows = out.reshape(*batch, n, D)
    return (rows, labels.reshape(*batch, n)) if return_labels else rows
