"""Information criteria for fitted mixtures (NumPy only; lower is better).

Signs follow scikit-learn: ``AIC = -2 log L + 2 p`` and ``BIC = -2 log L +
p log n``; R's mclust prints BIC with the opposite sign.
"""

from __future__ import annotations

import numpy as np

from bayesgmm import parsimonious

__all__ = ["aic", "bic", "icl", "n_parameters"]


def n_parameters(n_components: int, n_features: int, covariance_type: str) -> int:
    """Number of free parameters of a Gaussian mixture.

    Parameters
    ----------
    n_components : int
        Number of components K.
    n_features : int
        Number of features D.
    covariance_type : str
        "full", "tied", "diag", "spherical", or one of the 14 mclust models
        (counted as mclust counts them, :func:`bayesgmm.parsimonious.n_parameters`).

    Returns
    -------
    int
        ``K - 1`` weights, ``K D`` means and the covariance parameters.

    Examples
    --------
    >>> n_parameters(3, 4, "full"), n_parameters(2, 4, "VEV")
    (44, 26)
    """
    k, d = n_components, n_features
    if parsimonious.is_model(covariance_type):
        return parsimonious.n_parameters(covariance_type, k, d)
    cov_params = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    return int(cov_params + k * d + k - 1)


def aic(log_likelihood: float, n_params: int) -> float:
    """Akaike information criterion ``-2 log L + 2 p``.

    Examples
    --------
    >>> aic(-10.0, 3)
    26.0
    """
    return float(-2.0 * log_likelihood + 2.0 * n_params)


def bic(log_likelihood: float, n_params: int, n_obs: int) -> float:
    """Bayesian information criterion ``-2 log L + p log n``.

    Examples
    --------
    >>> round(bic(-10.0, 3, 100), 4)
    33.8155
    """
    return float(-2.0 * log_likelihood + n_params * np.log(n_obs))


def icl(log_likelihood: float, n_params: int, responsibilities: np.ndarray) -> float:
    """Integrated completed likelihood (Biernacki, Celeux and Govaert, 2000).

    ``ICL = BIC - 2 sum_n log r_{n, z_n}``, where ``z_n`` is the most probable
    component of row ``n``: BIC penalised by the hard-assignment entropy, as
    in mclust's ``icl``.

    Parameters
    ----------
    log_likelihood : float
        Total log-likelihood at the estimate.
    n_params : int
        Number of free parameters.
    responsibilities : ndarray of shape (n_samples, n_components)
        Component probabilities per row.

    Returns
    -------
    float

    Examples
    --------
    >>> round(icl(-10.0, 3, np.array([[1.0, 0.0], [0.5, 0.5]])) - bic(-10.0, 3, 2), 6)
    1.386294
    """
    resp = np.asarray(responsibilities, dtype=float)
    top = resp.max(axis=1)
    penalty = -2.0 * np.log(np.clip(top, np.finfo(float).tiny, None)).sum()
    return float(bic(log_likelihood, n_params, resp.shape[0]) + penalty)
