"""The Bayesian mixture model, specified once with NumPy only.

What every route of :class:`~bayesgmm.BayesGMM` shares: the prior settings
(:data:`PRIOR_KEYS`, checked by :func:`resolve_priors`), the data in
standardized units with the priors expressed in them (:class:`ModelData`,
built by :func:`model_data`), and the flat unconstrained layout of the
parameters (:func:`parameter_layout`).  The PyMC model
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

__all__ = [
    "COVARIANCE_TYPES",
    "PRIOR_KEYS",
    "ModelData",
    "model_data",
    "parameter_layout",
    "resolve_priors",
]

#: Prior keys accepted by ``priors=``, with a one-line meaning each.
PRIOR_KEYS: dict[str, str] = {
    "weights_concentration": (
        "Dirichlet concentration of the weights: float > 0 or array (n_components,); default 1.0"
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


@dataclass(frozen=True)
class ModelData:
    """Values of the :func:`pymc.Data` containers of a model.

    Attributes
    ----------
    X_std : ndarray of shape (n_samples, n_features)
        Standardized data ``(X - center) / scale``.
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

    def data_dict(self) -> dict[str, np.ndarray]:
        """Return the values keyed by the names of the model's data containers.

        Returns
        -------
        dict
            ``{name: value}`` for ``X_std``, ``weights_concentration``,
            ``means_loc``, ``means_scale``, ``sd_scale``, ``lkj_eta`` and ``reg_diag``.
        """
        return {
            "X_std": self.X_std,
            "weights_concentration": self.weights_concentration,
            "means_loc": self.means_loc,
            "means_scale": self.means_scale,
            "sd_scale": self.sd_scale,
            "lkj_eta": np.asarray(self.lkj_eta, dtype=float),
            "reg_diag": self.reg_diag,
        }


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
        ``lkj_eta`` a float).

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
    out: dict[str, Any] = {
        "weights_concentration": _positive_array(
            "weights_concentration",
            priors.get("weights_concentration", _DEFAULT_CONCENTRATION),
            n_components,
            "one per component",
        ),
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
    center = X.mean(axis=0)
    scale = X.std(axis=0)
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
    )


def parameter_layout(
    n_components: int, n_features: int, covariance_type: str
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

    Returns
    -------
    list of (str, tuple)
        PyMC value-variable names (``w_simplex__``, ``mu_std``,
        ``sd_std_log__``, ``cpc_u_logodds__``) with their shapes, in the
        order of ``model.free_RVs``.

    Examples
    --------
    >>> [name for name, shape in parameter_layout(3, 2, "full")]
    ['w_simplex__', 'mu_std', 'sd_std_log__', 'cpc_u_logodds__']
    """
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {COVARIANCE_TYPES}; got {covariance_type!r}."
        )
    K, D = int(n_components), int(n_features)
    out: list[tuple[str, tuple[int, ...]]] = []
    if K > 1:
        out.append(("w_simplex__", (K - 1,)))
    out.append(("mu_std", (K, D)))
    sd_shape = {"spherical": (K,), "tied": (D,)}.get(covariance_type, (K, D))
    out.append(("sd_std_log__", sd_shape))
    n_pairs = D * (D - 1) // 2
    if covariance_type in ("full", "tied") and D > 1:
        out.append(("cpc_u_logodds__", (K, n_pairs) if covariance_type == "full" else (n_pairs,)))
    return out
