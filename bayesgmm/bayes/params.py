"""Conversions between the model's raw variables and mixture parameters (NumPy only).

The PyMC model (:mod:`bayesgmm.bayes.model`) samples standardized, partially
unconstrained quantities; users see weights, means and full covariance
matrices in data units.  These functions map draws one way and initial values
the other way, without compiling anything.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "corr_cholesky_from_cpc",
    "cpc_from_corr_cholesky",
    "params_from_raw",
    "raw_from_params",
    "raw_from_unconstrained",
    "unconstrained_from_raw",
]


def corr_cholesky_from_cpc(z: np.ndarray, n_features: int) -> np.ndarray:
    """Cholesky factor of a correlation matrix from C-vine partial correlations.

    Parameters
    ----------
    z : ndarray of shape (..., n_features * (n_features - 1) // 2)
        Partial correlations in ``(-1, 1)``, pairs ``(i, j)``, ``j < i``, row by row.
    n_features : int
        Matrix size ``D``.

    Returns
    -------
    ndarray of shape (..., n_features, n_features)
        Lower-triangular ``C`` with unit-norm rows; ``C @ C.T`` is the correlation.

    Examples
    --------
    >>> C = corr_cholesky_from_cpc(np.array([0.5]), 2)
    >>> (C @ C.T).round(3).tolist()
    [[1.0, 0.5], [0.5, 1.0]]
    """
    z = np.asarray(z, dtype=float)
    batch = z.shape[:-1]
    C = np.zeros((*batch, n_features, n_features))
    rows, cols = np.tril_indices(n_features, k=-1)
    zfull = np.zeros((*batch, n_features, n_features))
    zfull[..., rows, cols] = z
    for i in range(n_features):
        rem = np.ones(batch)
        for j in range(i):
            C[..., i, j] = zfull[..., i, j] * np.sqrt(rem)
            rem = rem * (1.0 - zfull[..., i, j] ** 2)
        C[..., i, i] = np.sqrt(rem)
    return C


def cpc_from_corr_cholesky(C: np.ndarray) -> np.ndarray:
    """Inverse of :func:`corr_cholesky_from_cpc`.

    Parameters
    ----------
    C : ndarray of shape (..., D, D)
        Lower-triangular Cholesky factor of a correlation matrix.

    Returns
    -------
    ndarray of shape (..., D * (D - 1) // 2)
        Partial correlations, pairs row by row.

    Examples
    --------
    >>> cpc_from_corr_cholesky(corr_cholesky_from_cpc(np.array([0.3, -0.2, 0.1]), 3)).round(6)
    array([ 0.3, -0.2,  0.1])
    """
    C = np.asarray(C, dtype=float)
    d = C.shape[-1]
    rows, cols = np.tril_indices(d, k=-1)
    out = np.empty((*C.shape[:-2], rows.size))
    for p, (i, j) in enumerate(zip(rows, cols, strict=True)):
        used = np.sum(C[..., i, :j] ** 2, axis=-1)
        out[..., p] = C[..., i, j] / np.sqrt(np.clip(1.0 - used, 1e-300, None))
    return out


def params_from_raw(
    raw: Mapping[str, np.ndarray],
    *,
    covariance_type: str,
    n_components: int,
    center: np.ndarray,
    scale: np.ndarray,
    reg_diag: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Map raw model draws to weights, means and full covariances in data units.

    Parameters
    ----------
    raw : mapping
        Draws of ``w`` (..., K), ``mu_std`` (..., K, D), ``sd_std`` and, for
        full/tied with ``D > 1``, ``cpc_u``; any leading sample dims.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure of the model.
    n_components : int
        ``K``.
    center, scale : ndarray of shape (n_features,)
        Standardization of the data.
    reg_diag : ndarray of shape (n_features,)
        Variance floor in standardized units.

    Returns
    -------
    weights : ndarray of shape (..., K)
    means : ndarray of shape (..., K, D)
    covariances : ndarray of shape (..., K, D, D)

    Examples
    --------
    >>> raw = {"w": np.array([0.5, 0.5]), "mu_std": np.zeros((2, 1)), "sd_std": np.ones(2)}
    >>> w, m, c = params_from_raw(raw, covariance_type="spherical", n_components=2,
    ...                           center=np.array([1.0]), scale=np.array([2.0]),
    ...                           reg_diag=np.zeros(1))
    >>> m.ravel().tolist(), c.ravel().tolist()
    ([1.0, 1.0], [4.0, 4.0])
    """
    K = n_components
    center = np.asarray(center, dtype=float)
    scale = np.asarray(scale, dtype=float)
    D = center.size
    mu = np.asarray(raw["mu_std"], dtype=float)
    sd = np.asarray(raw["sd_std"], dtype=float)
    if "w" in raw:
        w = np.asarray(raw["w"], dtype=float)
    else:  # one component
        w = np.ones((*mu.shape[:-2], 1))
    batch = w.shape[:-1]
    eye = np.eye(D)
    if covariance_type == "spherical":
        cov = (sd[..., :, None, None] ** 2) * eye
    elif covariance_type == "diag":
        cov = (sd[..., :, :, None] ** 2) * eye
    else:
        if covariance_type == "tied":
            sd = np.broadcast_to(sd[..., None, :], (*batch, K, D))
        if D > 1:
            u = np.asarray(raw["cpc_u"], dtype=float)
            if covariance_type == "tied":
                u = np.broadcast_to(u[..., None, :], (*batch, K, u.shape[-1]))
            C = corr_cholesky_from_cpc(2.0 * u - 1.0, D)
        else:
            C = np.ones((*batch, K, 1, 1))
        L = sd[..., :, :, None] * C
        cov = L @ np.swapaxes(L, -1, -2)
    cov = cov + np.diag(np.asarray(reg_diag, dtype=float))
    means = center + mu * scale
    covariances = cov * scale[:, None] * scale[None, :]
    return w, means, covariances


def raw_from_params(
    weights: np.ndarray,
    means: np.ndarray,
    covariances: np.ndarray,
    *,
    covariance_type: str,
    center: np.ndarray,
    scale: np.ndarray,
    reg_diag: np.ndarray,
) -> dict[str, np.ndarray]:
    """Raw model values that reproduce given mixture parameters (for initial values).

    Parameters
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
        Full matrices, data units.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure of the model.
    center, scale : ndarray of shape (n_features,)
        Standardization of the data.
    reg_diag : ndarray of shape (n_features,)
        Variance floor in standardized units (subtracted, keeping at least
        10 % of each variance).

    Returns
    -------
    dict
        ``w``, ``mu_std``, ``sd_std`` and, when the model has it, ``cpc_u``.

    Examples
    --------
    >>> raw = raw_from_params(np.array([0.3, 0.7]), np.zeros((2, 1)), np.ones((2, 1, 1)),
    ...                       covariance_type="diag", center=np.zeros(1), scale=np.ones(1),
    ...                       reg_diag=np.zeros(1))
    >>> raw["sd_std"].tolist()
    [[1.0], [1.0]]
    """
    center = np.asarray(center, dtype=float)
    scale = np.asarray(scale, dtype=float)
    D = center.size
    w = np.clip(np.asarray(weights, dtype=float), 1e-6, None)
    w = w / w.sum()
    mu = (np.asarray(means, dtype=float) - center) / scale
    cov = np.asarray(covariances, dtype=float) / (scale[:, None] * scale[None, :])
    var = np.diagonal(cov, axis1=-2, axis2=-1)
    reg = np.asarray(reg_diag, dtype=float)
    new_var = np.maximum(var - reg, 0.1 * var)
    sd = np.sqrt(new_var)  # (K, D)
    out: dict[str, np.ndarray] = {"w": w, "mu_std": mu}
    if covariance_type == "spherical":
        out["sd_std"] = np.sqrt(new_var.mean(axis=-1))
        return out
    if covariance_type == "diag":
        out["sd_std"] = sd
        return out
    old_sd = np.sqrt(var)
    corr = cov / (old_sd[..., :, None] * old_sd[..., None, :])
    if covariance_type == "tied":
        sd = sd.mean(axis=0)
        corr = corr.mean(axis=0)
    out["sd_std"] = sd
    if D > 1:
        corr = 0.99 * corr + 0.01 * np.eye(D)  # keep away from the boundary
        z = cpc_from_corr_cholesky(np.linalg.cholesky(corr))
        out["cpc_u"] = np.clip((z + 1.0) / 2.0, 1e-6, 1 - 1e-6)
    return out


def unconstrained_from_raw(raw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map raw values to PyMC's unconstrained (transformed) space.

    Parameters
    ----------
    raw : mapping
        ``w``, ``mu_std``, ``sd_std`` and optionally ``cpc_u``.

    Returns
    -------
    dict
        ``w_simplex__``, ``mu_std``, ``sd_std_log__`` and ``cpc_u_logodds__``,
        using PyMC's simplex, log and log-odds transforms.

    Examples
    --------
    >>> unconstrained_from_raw({"w": np.array([0.5, 0.5]), "mu_std": np.zeros(1),
    ...                         "sd_std": np.ones(1)})["w_simplex__"].tolist()
    [0.0]
    """
    out = {
        "mu_std": np.asarray(raw["mu_std"], dtype=float),
        "sd_std_log__": np.log(np.asarray(raw["sd_std"], dtype=float)),
    }
    if "w" in raw:
        log_w = np.log(np.asarray(raw["w"], dtype=float))
        out["w_simplex__"] = log_w[..., :-1] - log_w.mean(axis=-1, keepdims=True)
    if "cpc_u" in raw:
        u = np.asarray(raw["cpc_u"], dtype=float)
        out["cpc_u_logodds__"] = np.log(u) - np.log1p(-u)
    if "alpha" in raw:  # a sampled concentration (log transform)
        out["alpha_log__"] = np.log(np.asarray(raw["alpha"], dtype=float))
    return out


def raw_from_unconstrained(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Map unconstrained draws back to the model's variables (NumPy).

    Parameters
    ----------
    values : mapping
        ``w_simplex__``, ``mu_std``, ``sd_std_log__`` and optionally
        ``cpc_u_logodds__``, any leading dims.

    Returns
    -------
    dict
        ``w``, ``mu_std``, ``sd_std`` and optionally ``cpc_u``.

    Examples
    --------
    >>> raw_from_unconstrained({"w_simplex__": np.zeros(1), "mu_std": np.zeros(1),
    ...                         "sd_std_log__": np.zeros(1)})["w"].tolist()
    [0.5, 0.5]
    """
    out = {
        "mu_std": np.asarray(values["mu_std"], dtype=float),
        "sd_std": np.exp(np.asarray(values["sd_std_log__"], dtype=float)),
    }
    if "w_simplex__" in values:  # absent with one component
        s = np.asarray(values["w_simplex__"], dtype=float)
        full = np.concatenate([s, -s.sum(axis=-1, keepdims=True)], axis=-1)
        full = np.exp(full - full.max(axis=-1, keepdims=True))
        out["w"] = full / full.sum(axis=-1, keepdims=True)
    if "cpc_u_logodds__" in values:
        out["cpc_u"] = 1.0 / (1.0 + np.exp(-np.asarray(values["cpc_u_logodds__"], dtype=float)))
    if "alpha_log__" in values:  # a sampled concentration
        out["alpha"] = np.exp(np.asarray(values["alpha_log__"], dtype=float))
    return out
