r"""The 14 parsimonious covariance models of mclust, as M-steps (NumPy and SciPy only).

Banfield and Raftery (1993) and Celeux and Govaert (1995) write a component
covariance through its eigen-decomposition

.. math:: \Sigma_k = \lambda_k D_k A_k D_k^\top,

with volume :math:`\lambda_k = |\Sigma_k|^{1/D}`, shape :math:`A_k` (diagonal,
:math:`|A_k| = 1`) and orientation :math:`D_k` (orthogonal). Each of the three
letters of a model name says whether that part is equal across components
(``E``), varies (``V``) or is the identity (``I``, for shape and orientation):
``EII`` is one common sphere, ``VVV`` an unconstrained covariance per component.

:func:`covariances` is the M-step: given the component sizes
:math:`n_k = \sum_i z_{ik}` and the weighted scatter matrices
:math:`W_k = \sum_i z_{ik} (x_i - \mu_k)(x_i - \mu_k)^\top` about the
components' weighted means (the mean update is the same in every model), it
returns the covariances of the model that maximise the expected complete-data
log-likelihood

.. math:: Q(\Sigma) = -\tfrac12 \sum_k \left[n_k \log|\Sigma_k|
          + \operatorname{tr}(\Sigma_k^{-1} W_k)\right].

Closed forms (Celeux and Govaert, 1995): EII, VII, EEI, EVI, VVI, EEE, EEV,
EVV, VVV. EVI, EEV and EVV are closed although often listed as iterative: in
EVI and EVV the shape (or the whole normalised matrix) of each component does
not depend on the common volume; in EEV the orientations are the eigenvectors
of each :math:`W_k` (von Neumann's trace inequality, with the common shape in
decreasing order) and the shape is the normalised sum of their eigenvalues.

Iterative: VEI, VEE and VEV alternate exact updates of the volumes and of
the common shape (VEV on the eigenvalues of each :math:`W_k`, whose
eigenvectors are its orientations, as in EEV); EVE and VVE alternate an exact
update of volumes and shapes given the common orientation with
majorisation-minimisation steps for the orientation (Browne and McNicholas,
2014): :math:`\sum_k \operatorname{tr}(W_k D \Psi_k D^\top)` is majorised
through the largest eigenvalue of :math:`W_k` and through the largest entry
of :math:`\Psi_k`, and each bound is minimised over orthogonal :math:`D` by
the polar factor of a :math:`D \times D` matrix. Every update increases
:math:`Q`; the loop stops when a sweep changes no component's covariance by
more than ``tol`` relative to its largest entry, or after ``max_iter`` sweeps. Within EM the step is
then a generalised M-step (it still raises :math:`Q`, so the log-likelihood
still increases); :func:`covariances` with ``return_info=True`` says whether it
converged.

``previous`` (the covariances of the last EM iteration) warm-starts the
iterative models: the volumes for VEI, VEE and VEV, the common orientation
(eigenvectors of a weighted sum of the previous covariances) for EVE and VVE.
Without it, EVE and VVE start from the eigenvectors of the pooled covariance
and of each :math:`W_k / n_k` and keep the best of these ``K + 1`` runs.

The floor ``reg`` enters every model the same way: ``n_k * reg`` is added to
the diagonal of each :math:`W_k` before the M-step. The result is always a
member of the model (the maximiser of :math:`Q` minus the penalty
:math:`\tfrac12 \sum_k n_k \mathrm{reg} \operatorname{tr} \Sigma_k^{-1}`, which
is :math:`-\infty` at a singular covariance), it keeps every covariance away
from singular, and for the four models that scikit-learn has it is exactly
scikit-learn's ``reg_covar``:
``VVV`` gives :math:`W_k/n_k + \mathrm{reg}\,I` (``full``), ``EEE``
:math:`W/N + \mathrm{reg}\,I` (``tied``), ``VVI`` the diagonal of
:math:`W_k/n_k` plus ``reg`` (``diag``), ``VII`` the mean of that diagonal plus
``reg`` (``spherical``). Component sizes get ``10 * eps`` added, as in
:mod:`bayesgmm.em`, so an empty component gets ``reg * I`` under VVV.

Parameter counts follow mclust's ``nVarParams``/``nMclustParams``: one volume
or ``K``, ``D - 1`` shape parameters or ``K (D - 1)``, ``D (D - 1) / 2``
orientation parameters or ``K D (D - 1) / 2``; with ``K - 1`` weights and
``K D`` means (:func:`n_parameters`), AIC, BIC and ICL match mclust's
(whose BIC has the opposite sign).

Invariance: like the models themselves, the M-steps are equivariant under a
rotation and a common rescaling of the data. VII, EII, EVE, VVE, EEV and VEV
are not equivariant under a separate scale per feature (a diagonal rescaling
changes eigenvectors), so EM in per-column working units must use one common
scale for them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from bayesgmm._constants import MCLUST_MODELS, SKLEARN_EQUIVALENTS
from bayesgmm._validation import validate_choice, validate_int, validate_positive

__all__ = [
    "CLOSED_FORM",
    "DESCRIPTIONS",
    "MODELS",
    "SKLEARN_EQUIVALENTS",
    "MStepInfo",
    "collapse_kind",
    "constrain",
    "covariances",
    "expected_log_likelihood",
    "n_covariance_parameters",
    "is_model",
    "n_parameters",
    "scale_kind",
    "screening_kind",
]

#: The 14 models, in mclust's order (volume, shape, orientation).
MODELS = MCLUST_MODELS
#: Models whose M-step is a closed form; the others iterate.
CLOSED_FORM = frozenset({"EII", "VII", "EEI", "EVI", "VVI", "EEE", "EEV", "EVV", "VVV"})
#: Models that are not equivariant under a separate scale per feature.
NEEDS_COMMON_SCALE = frozenset({"EII", "VII", "EVE", "VVE", "EEV", "VEV"})

#: Inside EM (:func:`constrain`), an iterative M-step stops after this many sweeps or ...
#: (5: on the iris table of EVE and VVE, K=1..9, the same or higher log-likelihoods as
#: 100 sweeps in 2.5x less time; EM's own iterations finish the job)
EM_MSTEP_MAX_ITER = 5
#: ... when a sweep moves no covariance by more than this, relative (mclust's inner
#: tolerance is sqrt(machine epsilon), 1.5e-8). Warm-started from the last iteration, the
#: step raises Q even when it stops early, so EM stays a generalised EM.
EM_MSTEP_TOL = 1e-8

#: Each model in words, as mclust's documentation describes it.
DESCRIPTIONS = {
    "EII": "spherical, equal volume",
    "VII": "spherical, varying volume",
    "EEI": "diagonal, equal volume and shape",
    "VEI": "diagonal, varying volume, equal shape",
    "EVI": "diagonal, equal volume, varying shape",
    "VVI": "diagonal, varying volume and shape",
    "EEE": "ellipsoidal, equal volume, shape and orientation",
    "VEE": "ellipsoidal, equal shape and orientation",
    "EVE": "ellipsoidal, equal volume and orientation",
    "VVE": "ellipsoidal, equal orientation",
    "EEV": "ellipsoidal, equal volume and shape",
    "VEV": "ellipsoidal, equal shape",
    "EVV": "ellipsoidal, equal volume",
    "VVV": "ellipsoidal, varying volume, shape and orientation",
}

_EPS = 10 * np.finfo(float).eps
_NOT_PD = (
    "The {model} M-step gave a covariance that is not positive definite (component(s) "
    "{bad}): their points have too little spread in some direction. Increase reg "
    "(now {reg}), use fewer components, or a more constrained model."
)


class MStepInfo(NamedTuple):
    """What one M-step did: converged, sweeps run, and its objective ``Q``."""

    converged: bool
    n_iter: int
    objective: float


# --------------------------------------------------------------------------
# Wiring into the EM engine and the estimators
# --------------------------------------------------------------------------


def is_model(covariance_type: Any) -> bool:
    """Whether ``covariance_type`` names one of the 14 mclust models.

    Examples
    --------
    >>> is_model("VEV"), is_model("full")
    (True, False)
    """
    return isinstance(covariance_type, str) and covariance_type in MODELS


def screening_kind(model: str) -> str:
    """The scikit-learn covariance type that restart screening runs for ``model``.

    The stacked screening of candidate starts
    (:func:`bayesgmm.initialization.batched_em`) knows scikit-learn's four
    types only; candidates for an mclust model are screened under the nearest
    of them (spherical for EII/VII, diagonal for the other diagonal models,
    tied for EEE, full for every other ellipsoidal model) and the chosen
    starts are then run to convergence under the model itself.

    Examples
    --------
    >>> [screening_kind(m) for m in ("EII", "VEI", "EEE", "VEV")]
    ['spherical', 'diag', 'tied', 'full']
    """
    model = _validate_model(model)
    if model in ("EII", "VII"):
        return "spherical"
    if model.endswith("I"):
        return "diag"
    return "tied" if model == "EEE" else "full"


def scale_kind(model: str) -> str:
    """The rule for EM's working units under ``model`` (see ``initialization.working_scale``).

    ``"spherical"`` (one common scale) for the models that are not
    equivariant under a separate scale per feature (:data:`NEEDS_COMMON_SCALE`),
    ``"full"`` (one scale per column) for the others.

    Examples
    --------
    >>> scale_kind("VEV"), scale_kind("VVV")
    ('spherical', 'full')
    """
    return "spherical" if _validate_model(model) in NEEDS_COMMON_SCALE else "full"


def collapse_kind(model: str) -> str:
    """The scikit-learn type whose collapse rule (points needed per component) fits ``model``.

    A component with its own orientation needs ``D + 1`` points (``"full"``),
    one sharing everything but volume or shape needs 2 (``"diag"``), and
    EII, EEI, EEE, whose components share the whole covariance, need 1
    (``"tied"``); see :func:`bayesgmm.em.collapsed_from_full`.

    Examples
    --------
    >>> collapse_kind("VEV"), collapse_kind("VEI"), collapse_kind("EEE")
    ('full', 'diag', 'tied')
    """
    model = _validate_model(model)
    if model[2] == "V":
        return "full"
    return "tied" if model in ("EII", "EEI", "EEE") else "diag"


def constrain(model: str, nk: np.ndarray, unconstrained: np.ndarray,
              previous: np.ndarray | None = None, *, reg: float | np.ndarray = 0.0,
              max_iter: int = EM_MSTEP_MAX_ITER, tol: float = EM_MSTEP_TOL) -> np.ndarray:
    """The M-step of ``model`` from the unconstrained (VVV) M-step, as EM calls it.

    The EM engine's full-covariance M-step gives ``W_k / n_k + diag(reg)``;
    this recovers the scatter ``W_k`` and returns :func:`covariances` of
    ``model`` with the same floor, warm-started from ``previous``.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    nk : ndarray of shape (n_components,)
        Component sizes.
    unconstrained : ndarray of shape (n_components, n_features, n_features)
        ``W_k / n_k + diag(reg)``.
    previous : ndarray of shape (n_components, n_features, n_features), optional
        The last iteration's covariances (warm start of the iterative models).
    reg : float or ndarray of shape (n_features,), default=0.0
        The floor that ``unconstrained`` includes.
    max_iter, tol
        Of an iterative M-step (:data:`EM_MSTEP_MAX_ITER`, :data:`EM_MSTEP_TOL`).

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)

    Examples
    --------
    >>> full = np.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 3.0]]])
    >>> constrain("EEE", np.array([1.0, 3.0]), full)[0]
    array([[1.25 , 0.125],
           [0.125, 2.5  ]])
    """
    nk = np.asarray(nk, dtype=float)
    d = unconstrained.shape[-1]
    reg_arr = np.broadcast_to(np.asarray(reg, dtype=float), (d,))
    scatter = unconstrained.copy()
    diag = np.arange(d)
    scatter[:, diag, diag] -= reg_arr
    scatter *= nk[:, None, None]
    if model == "VVV":
        return np.ascontiguousarray(unconstrained)
    # EM's statistics are valid by construction: no input checks; a covariance that is not
    # positive definite fails the engine's Cholesky, which says to increase reg_covar
    scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
    return _m_step(model, nk, scatter, previous, reg_arr, max_iter, tol)[0]


# --------------------------------------------------------------------------
# Parameter counts
# --------------------------------------------------------------------------


def _validate_model(model: Any) -> str:
    return validate_choice(model, "model", MODELS)


def n_covariance_parameters(model: str, n_components: int, n_features: int) -> int:
    """Number of free covariance parameters of a model, as mclust counts them.

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    n_components : int
        Number of components K.
    n_features : int
        Number of features D.

    Returns
    -------
    int
        Volume (1 or K) plus shape (0, D - 1 or K (D - 1)) plus orientation
        (0, D (D - 1) / 2 or K D (D - 1) / 2) parameters.

    Examples
    --------
    >>> n_covariance_parameters("VEV", 2, 4)
    17
    """
    model = _validate_model(model)
    k = validate_int(n_components, "n_components")
    d = validate_int(n_features, "n_features")
    volume, shape, orientation = model
    count = {"E": 1, "V": k}[volume]
    count += {"I": 0, "E": d - 1, "V": k * (d - 1)}[shape]
    count += {"I": 0, "E": 1, "V": k}[orientation] * (d * (d - 1) // 2)
    return int(count)


def n_parameters(model: str, n_components: int, n_features: int) -> int:
    """Number of free parameters of a mixture of a model (mclust's ``nMclustParams``).

    Parameters
    ----------
    model : str
        One of :data:`MODELS`.
    n_components : int
        Number of components K.
    n_features : int
        Number of features D.

    Returns
    -------
    int
        ``K - 1`` weights, ``K D`` means and the covariance parameters.

    Examples
    --------
    >>> n_parameters("VEV", 2, 4)  # iris, mclust's pick
    26
    """
    cov = n_covariance_parameters(model, n_components, n_features)
    return int(cov + n_components * n_features + n_components - 1)


# --------------------------------------------------------------------------
# Objective and input checks
# --------------------------------------------------------------------------


def expected_log_likelihood(nk: np.ndarray, scatter: np.ndarray,
                            covariances: np.ndarray) -> float:
    """The covariance part of the expected complete-data log-likelihood.

    ``Q = -1/2 sum_k [nk log|Sigma_k| + tr(Sigma_k^{-1} W_k)]``, without the
    constant ``-N D log(2 pi) / 2``.

    Parameters
    ----------
    nk : ndarray of shape (n_components,)
        Component sizes.
    scatter : ndarray of shape (n_components, n_features, n_features)
        Weighted scatter matrices about the component means.
    covariances : ndarray of shape (n_components, n_features, n_features)
        Positive definite covariances.

    Returns
    -------
    float

    Examples
    --------
    >>> round(expected_log_likelihood(np.array([2.0]), np.eye(2)[None] * 2, np.eye(2)[None]), 6)
    -2.0
    """
    chol = np.linalg.cholesky(covariances)
    logdet = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    trace = np.einsum("kii->k", np.linalg.solve(covariances, scatter))
    return float(-0.5 * (nk @ logdet + trace.sum()))


def _check_inputs(nk: Any, scatter: Any, previous: Any, reg: Any):
    nk = np.asarray(nk, dtype=float)
    if nk.ndim != 1 or nk.size == 0 or not np.isfinite(nk).all() or (nk < 0).any():
        raise ValueError(
            f"nk must be a 1-D array of finite component sizes >= 0, got shape {nk.shape} "
            f"and values {nk.ravel()[:5].tolist()}."
        )
    k = nk.shape[0]
    scatter = np.asarray(scatter, dtype=float)
    if scatter.ndim != 3 or scatter.shape[0] != k or scatter.shape[1] != scatter.shape[2]:
        raise ValueError(
            f"scatter must have shape (n_components, n_features, n_features) = ({k}, D, D) "
            f"to match nk, got {scatter.shape}."
        )
    if not np.isfinite(scatter).all():
        raise ValueError("scatter must be finite, but it holds NaN or inf entries.")
    d = scatter.shape[1]
    asym = np.abs(scatter - scatter.transpose(0, 2, 1)).max(initial=0.0)
    size = np.abs(scatter).max(initial=0.0)
    if asym > 1e-8 * size:
        raise ValueError(
            f"scatter must hold symmetric matrices, got a largest asymmetry {asym:.3g} "
            f"(largest entry {size:.3g})."
        )
    scatter = 0.5 * (scatter + scatter.transpose(0, 2, 1))
    reg_arr = np.asarray(reg, dtype=float)
    if reg_arr.ndim == 0:
        validate_positive(float(reg_arr), "reg", allow_zero=True)
        reg_arr = np.full(d, float(reg_arr))
    elif reg_arr.shape != (d,) or not np.isfinite(reg_arr).all() or (reg_arr < 0).any():
        raise ValueError(
            f"reg must be a number >= 0 or an array of shape (n_features,) = ({d},) of "
            f"numbers >= 0, got {reg!r}."
        )
    if previous is not None:
        previous = np.asarray(previous, dtype=float)
        if previous.shape != scatter.shape:
            raise ValueError(
                f"previous must have the shape of scatter, {scatter.shape}, got "
                f"{previous.shape}."
            )
        if not np.isfinite(previous).all() or (np.linalg.eigvalsh(previous) <= 0).any():
            raise ValueError(
                "previous must hold finite positive definite covariances (the last EM "
                "iteration's), or be None."
            )
    return nk, scatter, previous, reg_arr


# --------------------------------------------------------------------------
# Small tools
# --------------------------------------------------------------------------


def _geomean(values: np.ndarray) -> np.ndarray:
    """Geometric mean along the last axis."""
    return np.exp(np.log(values).mean(axis=-1))


def _eig_desc(matrices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (decreasing) and eigenvectors (columns) of symmetric matrices."""
    values, vectors = np.linalg.eigh(matrices)
    return values[..., ::-1], vectors[..., ::-1]


def _rotate(frames: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """``R diag(sigma) R^T`` for frames ``R`` of shape (K, D, D) or (D, D)."""
    covs = (frames * sigma[:, None, :]) @ np.swapaxes(frames, -1, -2)
    return 0.5 * (covs + covs.transpose(0, 2, 1))


def _diag_objective(nk: np.ndarray, sigma: np.ndarray, b: np.ndarray) -> float:
    """``Q`` when ``Sigma_k = R diag(sigma_k) R^T`` and ``b_k = diag(R^T W_k R)``."""
    return float(-0.5 * (nk @ np.log(sigma).sum(axis=1) + (b / sigma).sum()))


def _polar(matrix: np.ndarray) -> np.ndarray:
    """The orthogonal ``D`` maximising ``tr(matrix^T D)``: ``U V^T`` of the SVD."""
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt


class _StoppingRule:
    """Stop when a sweep changes every component by less than ``tol`` relative to its size.

    Not on the gain in ``Q``: near the optimum the sweeps converge linearly and
    their gains fall below the rounding of ``Q`` (about ``1e-15 |Q|``) while the
    parameters still move by ``1e-6``; a gain would stop them there.
    """

    def __init__(self, tol: float, objective: float = -np.inf):
        self.tol, self.objective = tol, objective
        self.last: np.ndarray | None = None

    def done(self, objective: float, params: np.ndarray) -> bool:
        self.objective = objective
        last, self.last = self.last, params
        if last is None:
            return False
        axes = tuple(range(1, params.ndim))
        change = np.abs(params - last).max(axis=axes) / np.abs(params).max(axis=axes)
        return bool(change.max() <= self.tol)


# --------------------------------------------------------------------------
# Iterative M-steps
# --------------------------------------------------------------------------


def _common_shape_volumes(nk: np.ndarray, b: np.ndarray, lam: np.ndarray, max_iter: int,
                          tol: float) -> tuple[np.ndarray, MStepInfo]:
    """VEI and VEV: ``sigma_k = lambda_k a`` with ``prod(a) = 1`` given diagonals ``b``.

    Alternates ``a = normalised sum_k b_k / lambda_k`` and
    ``lambda_k = sum_j (b_kj / a_j) / (D n_k)`` (Celeux and Govaert, 1995),
    each the exact maximiser given the other, from the volumes ``lam``.
    """
    d = b.shape[1]
    rule, converged, sweep = _StoppingRule(tol), False, 0
    for sweep in range(1, max_iter + 1):  # noqa: B007 - reported
        shape = (b / lam[:, None]).sum(axis=0)
        shape /= _geomean(shape)
        lam = (b / shape).sum(axis=1) / (d * nk)
        sigma = lam[:, None] * shape
        if rule.done(_diag_objective(nk, sigma, b), sigma):
            converged = True
            break
    return sigma, MStepInfo(converged, sweep, rule.objective)


def _vee(nk: np.ndarray, scatter: np.ndarray, lam: np.ndarray, max_iter: int,
         tol: float) -> tuple[np.ndarray, MStepInfo]:
    """VEE: ``Sigma_k = lambda_k C`` with ``|C| = 1``, alternating exact updates."""
    d = scatter.shape[1]
    rule, converged, sweep = _StoppingRule(tol), False, 0
    for sweep in range(1, max_iter + 1):
        pooled = (scatter / lam[:, None, None]).sum(axis=0)
        sign, logdet = np.linalg.slogdet(pooled)
        if sign <= 0:  # no positive definite update: the caller reports the failure
            return np.full_like(scatter, np.nan), MStepInfo(False, sweep, -np.inf)
        common = pooled / np.exp(logdet / d)
        lam = np.einsum("kii->k", np.linalg.solve(common, scatter)) / (d * nk)
        covs = lam[:, None, None] * common
        if rule.done(expected_log_likelihood(nk, scatter, covs), covs):
            converged = True
            break
    return covs, MStepInfo(converged, sweep, rule.objective)


def _given_orientation(model: str, nk: np.ndarray, b: np.ndarray) -> np.ndarray:
    """EVE and VVE: the best ``sigma_k`` (eigenvalues) given the common orientation."""
    if model == "VVE":
        return b / nk[:, None]
    scale = _geomean(b)  # EVE: a_k = b_k / |b_k|^(1/D), lambda = sum_k |b_k|^(1/D) / N
    return (scale.sum() / nk.sum()) * (b / scale[:, None])


def _orientation_run(model: str, nk: np.ndarray, scatter: np.ndarray, top: np.ndarray,
                     frame: np.ndarray, max_iter: int,
                     tol: float) -> tuple[np.ndarray, np.ndarray, MStepInfo]:
    """EVE or VVE from one starting orientation: exact eigenvalue updates and MM steps.

    The orientation step lowers ``f(D) = sum_k tr(W_k D Psi_k D^T)``, ``Psi_k =
    diag(1 / sigma_k)``, by two majorisation-minimisation steps (Browne and
    McNicholas, 2014): writing ``W_k = alpha_k I - M_k`` with ``alpha_k`` the
    largest eigenvalue of ``W_k``, ``f`` is a constant minus a convex function
    of ``D``, so its linearisation at the current ``D`` is a majorant, minimised
    over orthogonal matrices by the polar factor of ``sum_k M_k D Psi_k``; the
    same with ``Psi_k = beta_k I - N_k`` gives ``sum_k W_k D N_k``.
    """
    turned = scatter @ frame  # W_k D
    b = (frame * turned).sum(axis=1)  # diag(D^T W_k D)
    sigma = _given_orientation(model, nk, b)
    rule = _StoppingRule(tol, _diag_objective(nk, sigma, b))
    rule.last, converged, sweep = _rotate(frame, sigma), False, 0
    for sweep in range(1, max_iter + 1):  # noqa: B007 - reported
        psi = 1.0 / sigma
        # sum_k (alpha_k I - W_k) D Psi_k
        frame = _polar(frame * (top @ psi) - (turned * psi[:, None, :]).sum(axis=0))
        spare = psi.max(axis=1, keepdims=True) - psi  # N_k = beta_k I - Psi_k
        frame = _polar(((scatter @ frame) * spare[:, None, :]).sum(axis=0))
        turned = scatter @ frame
        b = (frame * turned).sum(axis=1)
        sigma = _given_orientation(model, nk, b)
        if rule.done(_diag_objective(nk, sigma, b), _rotate(frame, sigma)):
            converged = True
            break
    return frame, sigma, MStepInfo(converged, sweep, rule.objective)


def _common_orientation(model: str, nk: np.ndarray, scatter: np.ndarray,
                        previous: np.ndarray | None, max_iter: int,
                        tol: float) -> tuple[np.ndarray, MStepInfo]:
    """EVE and VVE: warm start from ``previous``, else the best of ``K + 1`` starts."""
    top = np.linalg.eigvalsh(scatter)[:, -1]
    if previous is not None:
        k = previous.shape[0]
        # distinct weights so that ties between components' eigenvalues do not mix axes
        weights = (1.0 + np.arange(k) / k) / np.einsum("kii->k", previous)
        starts = [_eig_desc(np.einsum("k,kij->ij", weights, previous))[1]]
    else:
        covs = scatter / nk[:, None, None]
        starts = [_eig_desc(covs.sum(axis=0))[1], *_eig_desc(covs)[1]]
    best = None
    n_iter, all_converged = 0, True
    for start in starts:
        frame, sigma, info = _orientation_run(model, nk, scatter, top, start, max_iter, tol)
        n_iter += info.n_iter
        all_converged &= info.converged
        if best is None or info.objective > best[2].objective:
            best = (frame, sigma, info)
    frame, sigma, info = best
    return _rotate(frame, sigma), MStepInfo(all_converged, n_iter, info.objective)


# --------------------------------------------------------------------------
# The M-step
# --------------------------------------------------------------------------


def covariances(
    model: str,
    nk: np.ndarray,
    scatter: np.ndarray,
    previous: np.ndarray | None = None,
    *,
    reg: float | np.ndarray = 0.0,
    max_iter: int = 500,
    tol: float = 1e-10,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, MStepInfo]:
    """Covariances of a parsimonious model that maximise the expected log-likelihood.

    Parameters
    ----------
    model : str
        One of :data:`MODELS` (``"EII"`` ... ``"VVV"``).
    nk : array-like of shape (n_components,)
        Component sizes ``sum_i z_ik`` (``>= 0``).
    scatter : array-like of shape (n_components, n_features, n_features)
        Weighted scatter matrices ``W_k = sum_i z_ik (x_i - mu_k)(x_i - mu_k)^T``
        about the components' weighted means.
    previous : array-like of shape (n_components, n_features, n_features), optional
        Covariances of the previous EM iteration: the warm start of the
        iterative models (ignored by the closed forms).
    reg : float or array-like of shape (n_features,), default=0.0
        Covariance floor: ``n_k * reg`` is added to the diagonal of every
        ``W_k`` (for VVV, EEE, VVI and VII exactly scikit-learn's ``reg_covar``).
    max_iter : int, default=500
        Most sweeps of an iterative M-step (per start for EVE and VVE).
    tol : float, default=1e-10
        An iterative M-step stops when a sweep changes every covariance by less
        than ``tol`` relative to its largest entry.
    return_info : bool, default=False
        Also return an :class:`MStepInfo`.

    Returns
    -------
    covariances : ndarray of shape (n_components, n_features, n_features)
        Full covariance matrices, members of the model.
    info : MStepInfo
        Only with ``return_info``: ``converged`` (always true for a closed
        form), ``n_iter`` (sweeps, summed over the starts; 0 for a closed form)
        and ``objective`` (``Q`` of the regularised scatter).

    Raises
    ------
    ValueError
        If an argument has the wrong shape or value, or the M-step gives a
        covariance that is not positive definite (increase ``reg``).

    Examples
    --------
    >>> W = np.array([[[4.0, 1.0], [1.0, 2.0]], [[1.0, 0.0], [0.0, 3.0]]])
    >>> covariances("EEE", np.array([2.0, 2.0]), W)[0]
    array([[1.25, 0.25],
           [0.25, 1.25]])
    >>> covariances("VII", np.array([2.0, 2.0]), W)[:, 0, 0]
    array([1.5, 1. ])
    """
    model = _validate_model(model)
    max_iter = validate_int(max_iter, "max_iter")
    tol = validate_positive(tol, "tol")
    nk, scatter, previous, reg_arr = _check_inputs(nk, scatter, previous, reg)
    covs, info = _m_step(model, nk, scatter, previous, reg_arr, max_iter, tol)
    _check_positive_definite(model, covs, reg)
    if not return_info:
        return covs
    if model in CLOSED_FORM:
        scatter = scatter.copy()
        diag = np.arange(scatter.shape[1])
        scatter[:, diag, diag] += (nk + _EPS)[:, None] * reg_arr
        info = MStepInfo(True, 0, expected_log_likelihood(nk + _EPS, scatter, covs))
    return covs, info


def _m_step(model: str, nk: np.ndarray, scatter: np.ndarray, previous: np.ndarray | None,
            reg_arr: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, MStepInfo]:
    """:func:`covariances` on checked inputs, without the final positive-definiteness check."""
    nk = nk + _EPS
    k, d = scatter.shape[0], scatter.shape[1]
    diag = np.arange(d)
    scatter = scatter.copy()
    scatter[:, diag, diag] += nk[:, None] * reg_arr
    total = nk.sum()
    info = MStepInfo(True, 0, np.nan)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if model in ("EII", "VII", "EEI", "VVI", "EVI", "VEI"):
            b = scatter[:, diag, diag]
            if model == "EII":
                sigma = np.full((k, d), b.sum() / (total * d))
            elif model == "VII":
                sigma = np.repeat((b.sum(axis=1) / (nk * d))[:, None], d, axis=1)
            elif model == "EEI":
                sigma = np.broadcast_to(b.sum(axis=0) / total, (k, d))
            elif model == "VVI":
                sigma = b / nk[:, None]
            elif model == "EVI":
                scale = _geomean(b)
                sigma = (scale.sum() / total) * (b / scale[:, None])
            else:  # VEI
                lam = (np.exp(np.linalg.slogdet(previous)[1] / d) if previous is not None
                       else b.sum(axis=1) / (nk * d))
                sigma, info = _common_shape_volumes(nk, b, lam, max_iter, tol)
            covs = _rotate(np.eye(d), sigma)
        elif model == "EEE":
            covs = np.broadcast_to(scatter.sum(axis=0) / total, (k, d, d)).copy()
        elif model == "VVV":
            covs = scatter / nk[:, None, None]
        elif model == "EVV":
            sign, logdet = np.linalg.slogdet(scatter)
            scale = np.where(sign > 0, np.exp(logdet / d), np.nan)
            covs = (scale.sum() / total) * scatter / scale[:, None, None]
        elif model in ("EEV", "VEV"):
            omega, frames = _eig_desc(scatter)
            if model == "EEV":
                sigma = np.broadcast_to(omega.sum(axis=0) / total, (k, d))
            else:
                lam = (np.exp(np.linalg.slogdet(previous)[1] / d) if previous is not None
                       else omega.sum(axis=1) / (nk * d))
                sigma, info = _common_shape_volumes(nk, omega, lam, max_iter, tol)
            covs = _rotate(frames, sigma)
        elif model == "VEE":
            lam = (np.exp(np.linalg.slogdet(previous)[1] / d) if previous is not None
                   else np.einsum("kii->k", scatter) / (nk * d))
            covs, info = _vee(nk, scatter, lam, max_iter, tol)
        else:  # EVE, VVE
            covs, info = _common_orientation(model, nk, scatter, previous, max_iter, tol)
    return np.ascontiguousarray(covs), info


def _check_positive_definite(model: str, covs: np.ndarray, reg: Any) -> None:
    finite = np.isfinite(covs).all(axis=(1, 2))
    bad = ~finite
    if finite.any():
        bad[finite] = np.linalg.eigvalsh(covs[finite])[:, 0] <= 0
    if bad.any():
        raise ValueError(_NOT_PD.format(model=model, bad=np.flatnonzero(bad).tolist(), reg=reg))
