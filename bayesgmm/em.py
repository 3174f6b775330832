"""Expectation-maximisation for Gaussian mixtures, in NumPy and SciPy only.

The engine is functional: :class:`EMState` holds the parameters,
:func:`run_em` iterates from a given state and returns the new state with an
:class:`EMInfo`. The estimator in :mod:`bayesgmm.estimators` wraps it.

Each iteration is one pass over the data, in row chunks that fit in cache,
split across threads for large data. For each chunk the E-step computes all
components' log-densities together (for full covariances, one matrix product
of the precisions with the chunk's products ``x_i x_j``), turns them into
responsibilities with an in-place log-sum-exp, and accumulates the
sufficient statistics (sums of ``r``, ``r x`` and ``r x x^T``, reusing the
same products) from which the M-step builds the next parameters.

EM runs on centred and scaled data (an exact change of units, undone on the
way out), so sums of squares neither overflow nor cancel; where a component
is so tight that the expanded quadratic form could still lose precision, the
full-covariance kernel switches to projecting through Cholesky factors and
takes second moments about the previous means.

Shapes follow scikit-learn's conventions, by ``covariance_type``:

============  ==========================  ==========================
type          covariances                 precisions_cholesky
============  ==========================  ==========================
"full"        (n_components, D, D)        (n_components, D, D)
"tied"        (D, D)                      (D, D)
"diag"        (n_components, D)           (n_components, D)
"spherical"   (n_components,)             (n_components,)
============  ==========================  ==========================

``precisions_cholesky`` is the upper-triangular ``U`` with ``precision = U U^T``.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from scipy import linalg
from threadpoolctl import ThreadpoolController

from bayesgmm import parsimonious
from bayesgmm._validation import column_squares
from bayesgmm.initialization import initial_responsibilities, kmeans, working_scale

__all__ = [
    "EMInfo",
    "EMState",
    "collapsed_components",
    "collapsed_from_full",
    "rounding_variance",
    "covariances_from_precisions",
    "e_step",
    "estimate_log_gaussian_prob",
    "full_covariances",
    "init_state",
    "kmeans",
    "log_likelihood",
    "m_step",
    "plan_threads",
    "precision_cholesky",
    "run_em",
]

LOG_2PI = np.log(2.0 * np.pi)
#: Rows per chunk in a pass: keeps the (rows, K * D) work arrays in cache.
_CHUNK_ELEMENTS = 1 << 19
_FAILED_CHOLESKY = (
    "Fitting the mixture model failed because some components have ill-defined empirical "
    "covariance (for instance caused by singleton or collapsed samples). Try to decrease the "
    "number of components, increase reg_covar (now {reg_covar:g}), or scale the input data."
)


class EMState(NamedTuple):
    """Parameters of a Gaussian mixture, in scikit-learn's shapes."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
    covariance_type: str


class EMInfo(NamedTuple):
    """What one EM run did.

    ``lower_bound`` is the mean log-likelihood per sample at the parameters
    that entered the last iteration (scikit-learn's ``lower_bound_``);
    ``trace`` holds that value for every iteration.
    """

    converged: bool
    n_iter: int
    lower_bound: float
    trace: np.ndarray


# --------------------------------------------------------------------------
# Cholesky factors and parameter counts
# --------------------------------------------------------------------------


def precision_cholesky(
    covariances: np.ndarray, covariance_type: str, reg_covar: float = 0.0
) -> np.ndarray:
    """Return the upper-triangular Cholesky factors of the precisions.

    Parameters
    ----------
    covariances : ndarray
        Covariances in the shape of ``covariance_type`` (see module table).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance parametrisation.
    reg_covar : float, default=0.0
        Only used in the error message.

    Returns
    -------
    ndarray
        ``U`` such that ``inv(cov) = U @ U.T``, same shape as ``covariances``.

    Raises
    ------
    ValueError
        If a covariance is not positive definite.
    """
    if covariance_type in ("diag", "spherical"):
        if np.any(~np.isfinite(covariances)) or np.any(covariances <= 0.0):
            raise ValueError(_FAILED_CHOLESKY.format(reg_covar=reg_covar))
        return 1.0 / np.sqrt(covariances)
    covs = covariances[None] if covariance_type == "tied" else covariances
    if not np.isfinite(covs).all():
        raise ValueError(_FAILED_CHOLESKY.format(reg_covar=reg_covar))
    try:
        chol = np.linalg.cholesky(covs)
    except np.linalg.LinAlgError:
        raise ValueError(_FAILED_CHOLESKY.format(reg_covar=reg_covar)) from None
    # inv(cov) = inv(L)^T inv(L), so U = inv(L)^T is upper triangular with U U^T = inv(cov)
    inverse = np.linalg.inv(chol)
    del chol
    iu, ju = np.triu_indices(inverse.shape[-1], 1)
    inverse[:, iu, ju] = 0.0  # exact zeros above the diagonal of inv(L), in place
    out = inverse.transpose(0, 2, 1)
    return out[0] if covariance_type == "tied" else out


def covariances_from_precisions(precisions: np.ndarray, covariance_type: str) -> np.ndarray:
    """Invert user-given precisions (scikit-learn's ``precisions_init``) to covariances."""
    if covariance_type in ("diag", "spherical"):
        return 1.0 / precisions
    if covariance_type == "tied":
        return linalg.inv(precisions)
    return np.stack([linalg.inv(p) for p in precisions])


def full_covariances(covariances: np.ndarray, covariance_type: str, n_components: int,
                     n_features: int) -> np.ndarray:
    """Expand any covariance parametrisation to ``(n_components, D, D)`` matrices."""
    if covariance_type == "full":
        return np.array(covariances, dtype=float)
    if covariance_type == "tied":
        return np.broadcast_to(covariances, (n_components, n_features, n_features)).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return covariances[:, None, None] * np.eye(n_features)[None]


def collapsed_components(state: EMState, n_samples: int, reg_covar: float,
                         rounding: np.ndarray | None = None) -> np.ndarray:
    """Indices of components that have collapsed onto a few points.

    A component is collapsed when it holds fewer points than its covariance
    needs (``D + 1`` for a full matrix, 2 for diagonal or spherical), or when
    its smallest covariance eigenvalue is within a factor 2 of ``reg_covar``,
    i.e. the regularisation, not the data, sets its spread, or when it is
    singular relative to the data (a variance below
    :data:`RELATIVE_VARIANCE_MIN` of the data's in some direction, whatever
    the floor; see :func:`collapsed_from_full`). Such solutions (spurious
    near-singular maxima, common with rounded data) have a high likelihood
    that says nothing about clusters.

    Returns
    -------
    ndarray of int
    """
    k, d = state.means.shape
    covs = full_covariances(state.covariances, state.covariance_type, k, d)
    return collapsed_from_full(state.weights, state.means, covs, state.covariance_type,
                               n_samples, reg_covar, rounding=rounding)


#: A component whose variance in some direction is below this fraction of the
#: mixture's own variance along the features (its spread below 1/10,000 of the
#: data's) is singular: its points lie on a line, a plane or one value, whatever
#: the floor. Data are seldom recorded to more than four or five significant
#: digits, so a real cluster is not that thin.
RELATIVE_VARIANCE_MIN = 1e-8


def rounding_variance(X: np.ndarray, max_rows: int = 20_000) -> np.ndarray:
    """Variance of rounding each feature to its resolution: ``step^2 / 12``.

    The step of a feature is the smallest gap between two of its distinct
    observed values (0.1 for lengths recorded to 0.1 cm); NaN entries are
    ignored. On more than ``max_rows`` rows, evenly spaced rows are read: a
    rounded feature shows its step in any large sample, and for continuous
    data the result is negligible either way.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    max_rows : int, default=20000

    Returns
    -------
    ndarray of shape (n_features,)
        0 for a feature with fewer than two distinct values.

    Examples
    --------
    >>> rounding_variance(np.array([[0.1], [0.3], [0.3], [0.7]])).round(6).tolist()
    [0.003333]
    """
    X = np.asarray(X, dtype=float)
    if X.shape[0] > max_rows:
        X = X[np.linspace(0, X.shape[0] - 1, max_rows).astype(int)]
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        gaps = np.diff(np.unique(X[:, j][~np.isnan(X[:, j])]))
        gaps = gaps[gaps > 0]
        out[j] = gaps.min() ** 2 / 12.0 if gaps.size else 0.0
    return out


def collapsed_from_full(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                        covariance_type: str, n_samples: int, reg_covar: float | np.ndarray,
                        floor_ratio: float = 2.0,
                        rounding: np.ndarray | None = None) -> np.ndarray:
    """:func:`collapsed_components` for full ``(K, D, D)`` covariance matrices.

    Three tests, any one of which marks a component:

    - it holds fewer points than its covariance needs;
    - on the floor: the covariance in floor units, ``diag(f)^-1/2 Sigma
      diag(f)^-1/2`` (``f`` the floor of every feature), has a smallest
      eigenvalue at most ``floor_ratio``: in some direction the floor, not
      the data, sets the spread;
    - singular relative to the data: the covariance in units of the
      mixture's total variance per feature (the diagonal of
      ``sum_k w_k (Sigma_k + mu_k mu_k') - mu mu'``) has a smallest
      eigenvalue below :data:`RELATIVE_VARIANCE_MIN`. This catches
      near-singular components whatever the floor, also with
      ``reg_covar=0`` or a floor far below the data's scale;
    - below the data's resolution (when ``rounding`` is given): the
      covariance in units of the features' rounding variances
      (:func:`rounding_variance`) has a smallest eigenvalue below 1: in some
      direction the component is narrower than rounding to the recorded
      step, so its points sit on repeated values (iris, recorded to 0.1 cm,
      with 40 % of its entries missing lets EM reach such fits).

    Parameters
    ----------
    weights : ndarray of shape (K,)
    means : ndarray of shape (K, D)
    covariances : ndarray of shape (K, D, D)
    covariance_type : str
        The fitted structure: it sets how many points a component needs.
    n_samples : int
    reg_covar : float or ndarray of shape (D,)
        The variance floor added to every covariance's diagonal; 0 checks
        the point counts only.
    rounding : ndarray of shape (D,), optional
        The data's rounding variance per feature; ``None`` skips that test.
    floor_ratio : float, default=2.0
        2 for a numerical floor (the data's own part of the variance is
        below the floor). For a floor at the data's squared resolution
        (Bayesian ``reg_covar="auto"``) use ``1 + 1/12``: the data's part is
        then below the variance of rounding to that resolution, i.e. the
        points sit on one recorded value (a real cluster can be as narrow as
        one step, as iris setosa's petal width is).

    Returns
    -------
    ndarray of int

    Examples
    --------
    >>> w, mu = np.array([0.5, 0.5]), np.zeros((2, 2))
    >>> covs = np.stack([np.eye(2), np.eye(2) * 1e-9])
    >>> collapsed_from_full(w, mu, covs, "full", 10, 1e-9).tolist()
    [1]
    >>> thin_in_x0 = np.stack([np.eye(2), np.diag([0.0102, 1.0])])  # floor 0.01 on x0
    >>> collapsed_from_full(w, mu, thin_in_x0, "full", 100,
    ...                     np.array([0.01, 1e-6]), floor_ratio=1 + 1 / 12).tolist()
    [1]
    >>> on_a_line = np.stack([np.eye(2) * 10, np.diag([1.2e-8, 10.0])])  # no floor at all
    >>> collapsed_from_full(w, mu, on_a_line, "full", 100, 0.0).tolist()
    [1]
    """
    d = covariances.shape[-1]
    weights = np.asarray(weights, dtype=float)
    counts = weights * n_samples
    need = d + 1 if covariance_type == "full" else (1 if covariance_type == "tied" else 2)
    floor = np.broadcast_to(np.asarray(reg_covar, dtype=float), (d,))
    means = np.asarray(means, dtype=float)
    centre = weights @ means
    spread = np.einsum("k,kij->ij", weights, covariances)
    spread += np.einsum("k,ki,kj->ij", weights, means - centre, means - centre)
    # each test's smallest eigenvalue of the covariances in that test's units
    units = [1.0 / np.sqrt(np.maximum(np.diag(spread), np.finfo(float).tiny))]
    if np.all(floor > 0):
        units.append(1.0 / np.sqrt(floor))
    use_rounding = rounding is not None and np.all(np.asarray(rounding) > 0)
    if use_rounding:
        units.append(1.0 / np.sqrt(np.asarray(rounding, dtype=float)))
    smallest = np.empty((len(units), covariances.shape[0]))
    batch = max(1, _COLLAPSE_BATCH_ELEMENTS // (d * d))  # a batch's copies stay small
    for a in range(0, covariances.shape[0], batch):
        covs = covariances[a : a + batch]
        for i, scale in enumerate(units):
            smallest[i, a : a + batch] = np.linalg.eigvalsh(
                covs * scale[:, None] * scale[None, :])[:, 0]
    singular = smallest[0] < RELATIVE_VARIANCE_MIN
    on_floor = smallest[1] <= floor_ratio if np.all(floor > 0) else np.zeros_like(singular)
    if use_rounding:
        singular |= smallest[-1] < 1.0
    return np.flatnonzero((counts < need) | on_floor | singular)


#: Covariance entries :func:`collapsed_from_full` scales and decomposes at once.
_COLLAPSE_BATCH_ELEMENTS = 1 << 16


def _has_nan(X: np.ndarray) -> bool:
    """Whether ``X`` has missing entries (checked in row blocks: no N x D temporary)."""
    step = max(1, (1 << 16) // max(1, X.shape[1]))
    return any(np.isnan(X[a : a + step]).any() for a in range(0, X.shape[0], step))


@functools.cache
def _triu(n_features: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Upper-triangle indices ``(i, j)`` and the weights of ``P_ij`` in ``z'Pz`` (1 or 2)."""
    iu, ju = np.triu_indices(n_features)
    return iu, ju, np.where(iu == ju, 1.0, 2.0)


def _log_det_cholesky(prec_chol: np.ndarray, covariance_type: str, n_features: int) -> np.ndarray:
    """Log-determinant of the precision Cholesky factor (``0.5 log det precision``)."""
    if covariance_type == "full":
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return np.log(np.diag(prec_chol)).sum()
    if covariance_type == "diag":
        return np.log(prec_chol).sum(axis=1)
    return n_features * np.log(prec_chol)


# --------------------------------------------------------------------------
# Working coordinates: EM runs on centred and scaled data
# --------------------------------------------------------------------------


class _Frame(NamedTuple):
    """Affine map to the working coordinates ``z = (x - center) / scale``.

    EM is equivariant under this map, so it runs on ``z``, where sums of
    squares neither overflow nor cancel, and parameters are mapped back.
    ``scale`` is per column, except for spherical covariances, which a
    per-column scaling would make non-spherical: they use one common scale.
    """

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def of(cls, X: np.ndarray, covariance_type: str) -> _Frame:
        """The frame of ``X``'s column means and sds (two passes in row blocks: no N x D copy).

        The blocks hold at most 1/16 of ``X`` (and at most :data:`_CHUNK_ELEMENTS`
        numbers), so small data are not copied whole either.
        """
        center = X.mean(axis=0)
        squares = column_squares(X, center, _CHUNK_ELEMENTS)
        return cls.from_moments(center, np.sqrt(squares / X.shape[0]), covariance_type)

    @classmethod
    def from_moments(cls, center: np.ndarray, sd: np.ndarray, covariance_type: str) -> _Frame:
        """The frame of columns with these means and sds (``initialization.working_scale``)."""
        return cls(center, working_scale(sd, covariance_type))

    def columns(self, X: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``X`` in working units, transposed to (features, rows)."""
        z = X[start:stop] - self.center
        z /= self.scale
        return np.ascontiguousarray(z.T)

    @property
    def log_jacobian(self) -> float:
        return float(np.log(self.scale).sum())

    def reg(self, reg_covar: float) -> np.ndarray:
        """``reg_covar`` (added in data units) expressed in working units."""
        return reg_covar / self.scale**2

    def to_work(self, state: EMState) -> EMState:
        return self._map(state, 1.0 / self.scale, (state.means - self.center) / self.scale)

    def to_data(self, state: EMState) -> EMState:
        return self._map(state, self.scale, state.means * self.scale + self.center)

    @staticmethod
    def _map(state: EMState, s: np.ndarray, means: np.ndarray) -> EMState:
        cov, pc, kind = state.covariances, state.precisions_cholesky, state.covariance_type
        if kind == "full":
            cov = cov * s[None, :, None] * s[None, None, :]
            pc = pc / s[None, :, None]
        elif kind == "tied":
            cov = cov * s[:, None] * s[None, :]
            pc = pc / s[:, None]
        elif kind == "diag":
            cov, pc = cov * s**2, pc / s
        else:
            cov, pc = cov * s[0] ** 2, pc / s[0]
        return EMState(state.weights, means, cov, pc, kind)


# --------------------------------------------------------------------------
# E-step. Work arrays are transposed: features or components along rows,
# observations along columns, so every reduction over components and every
# product of two features runs over long contiguous rows.
# --------------------------------------------------------------------------

#: Above this bound on ``max |z|^2 * lambda_max(precision)`` the expanded
#: quadratic form ``z'Pz - 2 mu'Pz + mu'P mu`` could lose more than ~1e-8 to
#: cancellation, and the full-covariance kernel projects through the Cholesky
#: factors instead (more arithmetic, exact).
_EXPANSION_BOUND = 1e8


def _prefer_projection(n_components: int, n_features: int) -> bool:
    """Whether the projected full-covariance kernel is the faster one at this shape.

    The expanded form costs about ``D^2 / 2`` products per row to build plus
    ``K D^2`` multiply-adds (E and M steps together, a GEMM with only ``K``
    rows); the projected form ``3 K D^2`` (a GEMM of the stacked factors and
    one SYRK per component) but no ``D^2 / 2`` temporaries. Building and
    streaming those temporaries costs about ``2 D`` multiply-adds each once
    they outgrow the cache, so projection wins when ``D(D + K) > 3 K D``,
    i.e. ``D > 2 K``; measured on the issue-13 grid (2-core AVX-512 machine,
    one BLAS thread) the cross-over is nearer ``D = 3 K`` (D=64: projected
    3.4x faster at K=2 and 2.8x at K=8, expanded 1.8x faster at K=30; D=16:
    projected 1.5x faster at K=2, expanded at K=8).
    """
    return n_features >= 8 and n_features >= 3 * n_components


class _Kernel:
    """Per-iteration constants for the log-densities of one state (working units)."""

    def __init__(self, state: EMState, max_sq_norm: float):
        self.type = kind = state.covariance_type
        k, d = state.means.shape
        self.n_components, self.n_features = k, d
        pc, means = state.precisions_cholesky, state.means
        const = np.log(state.weights) + _log_det_cholesky(pc, kind, d) - 0.5 * d * LOG_2PI
        self.expanded = True
        if kind == "full":
            bound = max_sq_norm * np.einsum("kij,kij->k", pc, pc).max()
            self.expanded = bool(bound < _EXPANSION_BOUND) and not _prefer_projection(k, d)
        if kind == "full" and self.expanded:
            prec = pc @ pc.transpose(0, 2, 1)
            iu, ju, weight = _triu(d)
            self.quad = prec[:, iu, ju] * (-0.5 * weight)
            self.lin = np.einsum("kij,kj->ki", prec, means)
            const -= 0.5 * np.einsum("ki,ki->k", means, self.lin)
        elif kind == "full":
            self.proj = np.ascontiguousarray(pc.transpose(0, 2, 1).reshape(k * d, d))
            self.offset = np.einsum("kd,kde->ke", means, pc).reshape(k * d, 1)
        elif kind == "tied":
            self.proj = np.ascontiguousarray(pc.T)
            self.lin = means @ pc
            const -= 0.5 * np.einsum("kd,kd->k", self.lin, self.lin)
        else:
            prec = pc**2 if kind == "diag" else np.repeat((pc**2)[:, None], d, axis=1)
            self.quad = -0.5 * prec
            self.lin = means * prec
            const -= 0.5 * np.sum(means**2 * prec, axis=1)
        self.const = const[:, None]
        self.centers = None if self.expanded else means

    def weighted_log_prob(self, zt: np.ndarray, z2t: np.ndarray | None) -> np.ndarray:
        """``log w_k + log N(z_n | mu_k, Sigma_k)`` as a (components, rows) array.

        ``zt`` holds working rows as columns; ``z2t`` the second-order
        products the expanded form needs (see :func:`_squares`).
        """
        if self.type == "full" and not self.expanded:
            k, d, n = self.n_components, self.n_features, zt.shape[1]
            y = self.proj @ zt
            y -= self.offset
            np.square(y, out=y)
            out = y.reshape(k, d, n).sum(axis=1)
            out *= -0.5
        elif self.type == "tied":
            y = self.proj @ zt
            out = self.lin @ y
            out -= 0.5 * np.einsum("dn,dn->n", y, y)
        else:
            out = self.quad @ z2t
            out += self.lin @ zt
        out += self.const
        return out


def _squares(zt: np.ndarray, kind: str, buf: np.ndarray | None = None) -> np.ndarray:
    """Second-order products of each column: upper triangle of ``z z^T`` (full) or ``z**2``."""
    if kind != "full":
        return zt * zt
    d, n = zt.shape
    out = np.empty((d * (d + 1) // 2, n)) if buf is None else buf[:, :n]
    row = 0
    for i in range(d):
        np.multiply(zt[i], zt[i:], out=out[row : row + d - i])
        row += d - i
    return out


#: Lowest exponent handed to ``np.exp`` in the log-sum-exp (see :func:`_normalise_inplace`).
_EXP_FLOOR = -700.0


def _normalise_inplace(wlp: np.ndarray) -> np.ndarray:
    """Turn (components, rows) weighted log-probabilities into responsibilities in place.

    Returns the per-row log-likelihood ``logsumexp(wlp, axis=0)``.
    """
    top = wlp.max(axis=0)
    wlp -= top
    # exp underflows below -708 through a slow path (10x the cost); from -700 on
    # it returns 1e-304 instead of 0, which no sum of responsibilities can see
    np.maximum(wlp, _EXP_FLOOR, out=wlp)
    np.exp(wlp, out=wlp)
    total = wlp.sum(axis=0)
    wlp /= total
    return np.log(total) + top


# --------------------------------------------------------------------------
# M-step
# --------------------------------------------------------------------------


class _Stats:
    """Sufficient statistics of working rows, accumulated chunk by chunk.

    For full covariances projected through Cholesky factors the second
    moments are taken about the previous means (``centers``), which keeps
    the covariance formula exact for very tight components.
    """

    def __init__(self, n_components: int, n_features: int, kind: str, centers=None):
        k, d = n_components, n_features
        self.type, self.centers = kind, centers
        self.nk = np.zeros(k)
        self.sx = np.zeros((k, d))
        if kind == "full" and centers is None:
            self.sxx = np.zeros((k, d * (d + 1) // 2))
        else:
            shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k, d)}
            self.sxx = np.zeros(shape[kind])

    def add(self, zt: np.ndarray, z2t: np.ndarray | None, resp: np.ndarray) -> None:
        """Accumulate working columns ``zt`` with (components, rows) responsibilities."""
        self.nk += resp.sum(axis=1)
        if self.centers is not None:
            root = np.sqrt(resp)
            for j, center in enumerate(self.centers):
                diff = zt - center[:, None]
                self.sx[j] += diff @ resp[j]
                diff *= root[j]
                self.sxx[j] += diff @ diff.T  # one SYRK: half the products of a GEMM
            return
        self.sx += resp @ zt.T
        if self.type == "tied":
            self.sxx += zt @ zt.T
        else:
            self.sxx += resp @ z2t.T

    def merge(self, other: _Stats) -> _Stats:
        self.nk += other.nk
        self.sx += other.sx
        self.sxx += other.sxx
        return self

    def m_step(self, reg: np.ndarray) -> EMState:
        """Parameters that maximise the expected log-likelihood (working units)."""
        eps = 10 * np.finfo(float).eps
        nk = self.nk + eps
        delta = self.sx / nk[:, None]
        k, d = delta.shape
        diag = np.arange(d)
        if self.type == "full":
            if self.centers is None:
                covs = np.empty((k, d, d))
                iu, ju, _ = _triu(d)
                covs[:, iu, ju] = self.sxx
                covs[:, ju, iu] = self.sxx
            else:
                covs = self.sxx + self.sxx.transpose(0, 2, 1)
                covs *= 0.5
            # in place, one component at a time: no (K, D, D) temporaries
            for j in range(k):
                covs[j] /= nk[j]
                covs[j] -= np.outer(delta[j], delta[j])
            covs[:, diag, diag] += reg
        elif self.type == "tied":
            covs = self.sxx - (nk[:, None] * delta).T @ delta
            covs = 0.5 * (covs + covs.T) / nk.sum()
            covs[diag, diag] += reg
        else:
            covs = self.sxx / nk[:, None] - delta**2 + reg
            if self.type == "spherical":
                covs = covs.mean(axis=1)
        means = delta if self.centers is None else self.centers + delta
        return EMState(
            weights=nk / nk.sum(),
            means=means,
            covariances=covs,
            precisions_cholesky=precision_cholesky(covs, self.type),
            covariance_type=self.type,
        )


# --------------------------------------------------------------------------
# Passes over the data
# --------------------------------------------------------------------------

#: Work below this many row-component-feature products runs in one thread.
_PARALLEL_MIN_WORK = 1 << 20


def _n_workers(n: int, n_components: int, n_features: int) -> int:
    if n * n_components * n_features < _PARALLEL_MIN_WORK:
        return 1
    return max(1, min(4, len(os.sched_getaffinity(0))))


#: Chunks of at most this many numbers are allowed whatever the data's size: on
#: tiny data each chunk's fixed cost (some 20 NumPy calls) outweighs its memory.
_SMALL_CHUNK_ELEMENTS = 1 << 15


def _chunk_rows(n_components: int, n_features: int, expanded: bool = True,
                kind: str = "full", n_rows: int | None = None) -> int:
    """Rows per chunk: the chunk's work arrays (about ``width`` numbers a row) fit in cache.

    The expanded full kernel holds the ``D(D + 1)/2`` products of each row,
    the projected one its ``K D`` projections, the others about ``2 D``.
    With ``n_rows`` (the data's rows, for a thread's block) the work arrays
    also stay below half of ``n_rows * (D + K)`` numbers, the size of the
    data and its responsibilities (or :data:`_SMALL_CHUNK_ELEMENTS` numbers,
    if more): on small data a whole-data chunk of products would take more
    memory than the data (scikit-learn's own temporaries are about one copy
    of the data; the issue-13 goal is a peak no higher than its).
    """
    k, d = n_components, n_features
    if kind == "full" and expanded:
        width = d * (d + 3) // 2 + 2 * k
    elif kind == "full":
        width = (k + 2) * d + 2 * k
    else:
        width = 3 * d + 2 * k
    rows = _CHUNK_ELEMENTS // width
    if n_rows is not None:
        rows = min(rows, max(n_rows * (d + k) // (2 * width), _SMALL_CHUNK_ELEMENTS // width))
    return int(max(64, rows))


#: BLAS products with fewer multiply-adds than this gain nothing from a second
#: thread (OpenBLAS's own threshold is of the same order, but it spin-waits,
#: which on a busy machine costs more than it saves).
_BLAS_PARALLEL_MIN_WORK = 1 << 24


@functools.cache
def _controller() -> ThreadpoolController:
    """The BLAS libraries loaded, as threadpoolctl sees them (found once: a scan costs 0.5 ms)."""
    return ThreadpoolController()


def _blas_threads_now() -> int | None:
    """The BLAS thread limit in force now (``None`` if threadpoolctl sees no BLAS)."""
    libs = _controller().select(user_api="blas").lib_controllers
    return max([lib.num_threads for lib in libs if lib.num_threads], default=None)


class _BlasThreads:
    """The process's BLAS thread limit, shared by every EM pass that is running.

    The limit is process-wide, so passes running at the same time in several
    threads share one setting. The first pass to start (when none runs)
    records the caller's limit and sets its own; passes that start while it
    runs plan from the recorded caller's limit and set nothing. The thread
    that set the limit restores it when its last pass ends, even if passes in
    other threads still run (they then finish under the caller's limit):
    OpenBLAS ignores a limit set from another thread once the main thread
    has set one, so a restore from any other thread could be lost.
    """

    def __init__(self):
        self.lock = threading.Lock()
        self.users = 0
        self.caller: int | None = None
        self.limiter = None
        self.owner: int | None = None
        self.owner_depth = 0

    def caller_threads(self) -> int | None:
        """The caller's limit: recorded while passes run, read from BLAS otherwise."""
        with self.lock:
            if self.users:
                return self.caller
        return _blas_threads_now()

    def acquire(self, threads: int) -> None:
        """A pass starts and wants ``threads`` BLAS threads."""
        me = threading.get_ident()
        with self.lock:
            if self.users == 0:
                self.caller = _blas_threads_now()
                self.owner = me
                if self.caller is not None and threads != self.caller:
                    self.limiter = _controller().limit(limits=threads, user_api="blas")
            if me == self.owner:
                self.owner_depth += 1
            self.users += 1

    def release(self) -> None:
        """A pass ends (in the thread that started it)."""
        with self.lock:
            self.users -= 1
            if threading.get_ident() == self.owner:
                self.owner_depth -= 1
                if self.owner_depth == 0:
                    if self.limiter is not None:
                        self.limiter.restore_original_limits()
                    self.limiter, self.owner = None, None
            if self.users == 0:
                self.caller = None


_BLAS = _BlasThreads()


def _caller_blas_threads() -> int | None:
    """The BLAS thread limit of EM's caller (``None`` if threadpoolctl sees no BLAS)."""
    return _BLAS.caller_threads()


def plan_threads(n: int, n_components: int, n_features: int, kind: str) -> tuple[int, int]:
    """Threads for one EM pass: ``(row-block workers, BLAS threads per worker)``.

    The budget is the caller's: at most the BLAS thread limit in force at
    the call (``OPENBLAS_NUM_THREADS``, ``threadpoolctl.threadpool_limits``,
    ...; the CPUs if threadpoolctl sees no BLAS library) and the CPUs this
    process may run on, and at most 4. A pass whose
    work (``N K D`` products, ``N K D^2`` for full and tied covariances) is
    below :data:`_PARALLEL_MIN_WORK` runs on one thread; a larger one splits
    its rows into one block per thread, each thread's BLAS calls on one
    thread. Only data too short to split (fewer than two chunks per thread)
    with large products (more than :data:`_BLAS_PARALLEL_MIN_WORK`
    multiply-adds per chunk) gives the budget to BLAS instead.

    Parameters
    ----------
    n : int
        Rows.
    n_components, n_features : int
    kind : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    workers, blas_threads : int
    """
    caller = _caller_blas_threads()
    budget = max(1, min(4, len(os.sched_getaffinity(0)), caller or 4))
    k, d = n_components, n_features
    per_row = k * d * (d if kind in ("full", "tied") else 1)
    if budget == 1 or n * per_row < _PARALLEL_MIN_WORK:
        return 1, 1
    step = _chunk_rows(k, d, kind=kind, n_rows=n)
    if n >= 2 * budget * step or n * per_row < _BLAS_PARALLEL_MIN_WORK:
        return budget, 1
    return 1, budget


class _Pass:
    """Runs fused E/M passes over ``X`` in working units, in row blocks across threads.

    It sets the BLAS threads its plan needs (:func:`plan_threads`) for its
    lifetime; :meth:`close` (or leaving a ``with`` block) restores the
    caller's setting, also after an error.
    """

    def __init__(self, X: np.ndarray, frame: _Frame, n_components: int, kind: str):
        self.X, self.frame, self.type = X, frame, kind
        n, d = X.shape
        self.workers, blas = plan_threads(n, n_components, d, kind)
        bounds = np.linspace(0, n, self.workers + 1).astype(int)
        self.blocks = list(itertools.pairwise(bounds.tolist()))
        self.block_rows = max(1, -(-n // self.workers))
        self.max_sq_norm = 0.0
        step = _chunk_rows(n_components, d, kind=kind, n_rows=n)
        for a in range(0, n, step):
            zt = frame.columns(X, a, a + step)
            self.max_sq_norm = max(self.max_sq_norm, float(np.einsum("dn,dn->n", zt, zt).max()))
        self.pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        self._holds_blas = False
        _BLAS.acquire(blas)
        self._holds_blas = True

    def __enter__(self) -> _Pass:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the worker threads and restore the caller's BLAS threads."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self._holds_blas:
            self._holds_blas = False
            _BLAS.release()

    def _block(self, kernel: _Kernel, start: int, stop: int, stats: _Stats | None,
               resp_out: np.ndarray | None, ll_out: np.ndarray | None,
               log_prob_out: np.ndarray | None = None) -> float:
        total = 0.0
        buf = None
        step = _chunk_rows(kernel.n_components, kernel.n_features, kernel.expanded,
                           self.type, self.block_rows)
        for a in range(start, stop, step):
            b = min(stop, a + step)
            zt = self.frame.columns(self.X, a, b)
            z2t = None
            if kernel.expanded and self.type != "tied":
                z2t = _squares(zt, self.type, buf)
                if self.type == "full" and buf is None:  # reused by the next chunks
                    buf = z2t
            resp = kernel.weighted_log_prob(zt, z2t)
            if log_prob_out is not None:
                log_prob_out[a:b] = resp.T
            else:
                row_ll = _normalise_inplace(resp)
                total += float(row_ll.sum())
                if stats is not None:
                    stats.add(zt, z2t, resp)
                if resp_out is not None:
                    resp_out[a:b] = resp.T
                    ll_out[a:b] = row_ll
            # free this chunk's arrays before the next chunk allocates its own
            zt = z2t = resp = row_ll = None
        return total

    def weighted_log_prob(self, state: EMState) -> np.ndarray:
        """``log w_k + log N(z_n | mu_k, Sigma_k)`` for every row (working units)."""
        kernel = _Kernel(state, self.max_sq_norm)
        out = np.empty((self.X.shape[0], state.means.shape[0]))
        jobs = [(kernel, a, b, None, None, None, out) for a, b in self.blocks]
        self._map(jobs)
        return out

    def _map(self, jobs: list[tuple]) -> list[float]:
        if self.pool is None:
            return [self._block(*job) for job in jobs]
        return list(self.pool.map(lambda job: self._block(*job), jobs))

    def run(self, state: EMState, *, keep: bool = False):
        """One pass at working-unit ``state``.

        Returns the total log-likelihood (working units) and either the
        merged sufficient statistics or, with ``keep=True``, the per-row
        log-likelihoods and responsibilities.
        """
        kernel = _Kernel(state, self.max_sq_norm)
        k, d = state.means.shape
        n = self.X.shape[0]
        resp = np.empty((n, k)) if keep else None
        rows = np.empty(n) if keep else None
        parts = [None if keep else _Stats(k, d, self.type, kernel.centers) for _ in self.blocks]
        jobs = [(kernel, a, b, parts[i], resp, rows) for i, (a, b) in enumerate(self.blocks)]
        totals = self._map(jobs)
        if keep:
            return sum(totals), rows, resp
        stats = parts[0]
        for other in parts[1:]:
            stats.merge(other)
        return sum(totals), stats


def e_step(X: np.ndarray, state: EMState) -> tuple[np.ndarray, np.ndarray]:
    """Responsibilities and per-row log-likelihood at ``state``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    state : EMState
        Mixture parameters.

    Returns
    -------
    log_lik : ndarray of shape (n_samples,)
        ``log p(x_n)`` under the mixture.
    resp : ndarray of shape (n_samples, n_components)
        Posterior probability of each component for each row.

    Rows with missing entries (NaN) are handled by :mod:`bayesgmm.em_missing`:
    ``log_lik`` is then the log-density of each row's observed part.
    """
    if _has_nan(X):
        from bayesgmm import em_missing

        return em_missing.e_step(X, state)
    frame = _Frame.of(X, state.covariance_type)
    runner = _Pass(X, frame, state.weights.shape[0], state.covariance_type)
    try:
        _, rows, resp = runner.run(frame.to_work(state), keep=True)
    finally:
        runner.close()
    return rows - frame.log_jacobian, resp


def weighted_log_prob(X: np.ndarray, state: EMState) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, Sigma_k)`` of every row under every component.

    The one NumPy implementation of the Gaussian mixture's log-density: EM's
    E-step, :mod:`bayesgmm.posterior` (every posterior draw) and the
    calibration code all evaluate it here.  The weights need not sum to one
    (a zero weight gives ``-inf``), so components of many mixtures can be
    stacked into one ``state`` and evaluated in one pass.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    state : EMState
        Mixture parameters (``precisions_cholesky`` must match ``covariances``).

    Returns
    -------
    ndarray of shape (n_samples, n_components)

    Examples
    --------
    >>> state = EMState(np.array([0.5]), np.zeros((1, 1)), np.ones((1, 1, 1)),
    ...                 np.ones((1, 1, 1)), "full")
    >>> round(float(weighted_log_prob(np.zeros((1, 1)), state)[0, 0]), 6)  # log 0.5 + log phi(0)
    -1.612086

    A row with missing entries (NaN) gets the density of its observed part
    (:func:`bayesgmm.em_missing.weighted_log_prob`).
    """
    if _has_nan(X):
        from bayesgmm import em_missing

        return em_missing.weighted_log_prob(X, state)
    frame = _Frame.of(X, state.covariance_type)
    runner = _Pass(X, frame, state.weights.shape[0], state.covariance_type)
    try:
        with np.errstate(divide="ignore"):
            weighted = runner.weighted_log_prob(frame.to_work(state))
    finally:
        runner.close()
    return weighted - frame.log_jacobian


def estimate_log_gaussian_prob(X: np.ndarray, state: EMState) -> np.ndarray:
    """Log-densities ``log N(x_n | mu_k, Sigma_k)`` of every row under every component.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    state : EMState
        Mixture parameters.

    Returns
    -------
    ndarray of shape (n_samples, n_components)
    """
    return weighted_log_prob(X, state) - np.log(state.weights)


def log_likelihood(X: np.ndarray, state: EMState) -> float:
    """Total log-likelihood ``sum_n log p(x_n)`` of the data under ``state``."""
    return float(e_step(X, state)[0].sum())


def m_step(X: np.ndarray, resp: np.ndarray, covariance_type: str, reg_covar: float) -> EMState:
    """Maximum-likelihood parameters given responsibilities.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    resp : ndarray of shape (n_samples, n_components)
        Responsibilities (rows sum to one).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance parametrisation.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance.

    Returns
    -------
    EMState
    """
    frame = _Frame.of(X, covariance_type)
    k, d = resp.shape[1], X.shape[1]
    centers = None
    if covariance_type == "full":  # exact second moments about each component's mean
        zt = frame.columns(X, 0, X.shape[0])
        centers = (zt @ resp).T / (resp.sum(axis=0)[:, None] + 10 * np.finfo(float).eps)
    stats = _Stats(k, d, covariance_type, centers)
    step = _chunk_rows(k, d, centers is None, covariance_type, X.shape[0])
    for a in range(0, X.shape[0], step):
        zt = frame.columns(X, a, a + step)
        z2t = None if centers is not None or covariance_type == "tied" else _squares(
            zt, covariance_type)
        stats.add(zt, z2t, np.ascontiguousarray(resp[a : a + step].T))
    try:
        return frame.to_data(stats.m_step(frame.reg(reg_covar)))
    except ValueError:
        raise ValueError(_FAILED_CHOLESKY.format(reg_covar=reg_covar)) from None


def run_em(
    X: np.ndarray,
    state: EMState,
    *,
    reg_covar: float,
    tol: float,
    max_iter: int,
    callback=None,
    model: str | None = None,
) -> tuple[EMState, EMInfo]:
    """Iterate EM from ``state`` until the mean log-likelihood gains less than ``tol``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data (float64, finite).
    state : EMState
        Starting parameters.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance.
    tol : float
        Convergence threshold on the gain in mean log-likelihood per sample.
    max_iter : int
        Maximum number of iterations (0 returns ``state`` unchanged).
    callback : callable, optional
        Called as ``callback(iteration, mean_log_likelihood)`` after each pass.
    model : str, optional
        One of the 14 mclust models (:mod:`bayesgmm.parsimonious`); ``state``
        is then a ``"full"`` state and every M-step is that model's.

    Returns
    -------
    state : EMState
        Parameters after the last M-step.
    info : EMInfo
        Convergence flag, iterations run, lower bound and its trace.

    Data with missing entries (NaN) go to :func:`bayesgmm.em_missing.run_em`,
    EM on the observed-data likelihood.
    """
    if _has_nan(X):
        from bayesgmm import em_missing

        return em_missing.run_em(X, state, reg_covar=reg_covar, tol=tol, max_iter=max_iter,
                                 callback=callback, model=model)
    scale = state.covariance_type if model is None else parsimonious.scale_kind(model)
    frame = _Frame.of(X, scale)
    runner = _Pass(X, frame, state.weights.shape[0], state.covariance_type)
    try:
        work, info = iterate(runner.run, frame.to_work(state), n_samples=X.shape[0],
                             log_jacobian=frame.log_jacobian, reg=frame.reg(reg_covar),
                             reg_covar=reg_covar, tol=tol, max_iter=max_iter,
                             callback=callback, model=model)
    finally:
        runner.close()
    return frame.to_data(work), info


def iterate(expectation, work: EMState, *, n_samples: int, log_jacobian: float,
            reg: np.ndarray, reg_covar: float, tol: float, max_iter: int,
            callback=None, model: str | None = None) -> tuple[EMState, EMInfo]:
    """The EM loop in working units, for complete and incomplete data alike.

    Parameters
    ----------
    expectation : callable
        ``work -> (total working-unit log-likelihood, _Stats)``: the E-step.
    work : EMState
        Starting parameters, working units.
    n_samples : int
    log_jacobian : float
        Mean per-row log-Jacobian of the working units (subtracted to report
        data-unit log-likelihoods).
    reg : ndarray
        ``reg_covar`` in working units.
    reg_covar : float
        ``reg_covar`` as given (for the error message).
    tol, max_iter, callback, model
        As :func:`run_em`.

    Returns
    -------
    work : EMState
        Parameters after the last M-step, working units.
    info : EMInfo
    """
    trace: list[float] = []
    converged = False
    lower_bound = -np.inf
    for iteration in range(1, max_iter + 1):
        total, stats = expectation(work)
        try:
            work = (stats.m_step(reg) if model is None
                    else _constrained(stats.m_step(reg), model, n_samples, reg, work))
        except ValueError:
            raise ValueError(_FAILED_CHOLESKY.format(reg_covar=reg_covar)) from None
        current = total / n_samples - log_jacobian
        trace.append(current)
        if callback is not None:
            callback(iteration, current)
        change, lower_bound = current - lower_bound, current
        if abs(change) < tol:
            converged = True
            break
    return work, EMInfo(converged, len(trace), lower_bound, np.asarray(trace))


def _constrained(full: EMState, model: str, n_samples: int, reg: np.ndarray,
                 previous: EMState) -> EMState:
    """The M-step of an mclust ``model`` from the full-covariance one (:mod:`parsimonious`)."""
    covs = parsimonious.constrain(model, full.weights * n_samples, full.covariances,
                                  previous.covariances, reg=reg)
    return full._replace(covariances=covs, precisions_cholesky=precision_cholesky(covs, "full"))


# --------------------------------------------------------------------------
# Initialisation
# --------------------------------------------------------------------------


def init_state(
    X: np.ndarray,
    n_components: int,
    covariance_type: str,
    *,
    reg_covar: float,
    init_params: str,
    rng: np.random.Generator,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    precisions_init: np.ndarray | None = None,
) -> EMState:
    """Starting parameters, as scikit-learn builds them, from a unit-free start.

    Responsibilities come from ``init_params`` (see
    :func:`bayesgmm.initialization.initial_responsibilities`; ``"auto"``
    means its first start, ``"hierarchical"``), computed on the z-scores of
    ``X`` so that the start, like EM, does not depend on the units. One M-step
    in data units turns them into parameters, and any user-given
    ``weights_init``, ``means_init`` or ``precisions_init`` replaces the
    corresponding estimate.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    n_components : int
        Number of components.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance parametrisation.
    reg_covar : float
        Non-negative amount added to the diagonal of every covariance.
    init_params : {"auto", "hierarchical", "kmeans", "k-means++", "random", \
"random_from_data"}
        Kind of start.
    rng : numpy.random.Generator
        Random source.
    weights_init, means_init, precisions_init : ndarray, optional
        User-given starting values (scikit-learn's shapes).

    Returns
    -------
    EMState
    """
    if _has_nan(X):  # the start only: missing entries at their column's mean
        X = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    given = (weights_init, means_init, precisions_init)
    if all(v is not None for v in given):
        state_w, state_m = np.asarray(weights_init, float), np.asarray(means_init, float)
    else:
        kind = "hierarchical" if init_params == "auto" else init_params
        resp = initial_responsibilities(X, n_components, kind, rng, covariance_type)
        base = m_step(X, resp, covariance_type, reg_covar)
        state_w = base.weights if weights_init is None else np.asarray(weights_init, float)
        state_m = base.means if means_init is None else np.asarray(means_init, float)
        if precisions_init is None:
            covs = base.covariances
    if precisions_init is not None:
        covs = covariances_from_precisions(np.asarray(precisions_init, float), covariance_type)
    return EMState(
        weights=state_w,
        means=state_m,
        covariances=covs,
        precisions_cholesky=precision_cholesky(covs, covariance_type, reg_covar),
        covariance_type=covariance_type,
    )
