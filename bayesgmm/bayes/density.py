"""Log-density and gradient of the bayesgmm model, written out by hand.

:func:`bayesgmm.bayes.model.build_gmm_model` describes the model to PyMC;
this module evaluates the same joint log-density (priors, PyMC's transforms
and their log-Jacobians, and the marginal likelihood) and its gradient, in the
same flat unconstrained coordinates, with one Numba kernel
(:mod:`bayesgmm.bayes._kernel`).  The kernel compiles once per machine (7.0 s,
then 0.3 s from Numba's disk cache), where nutpie's compile of PyMC's graph
of the same model costs 9-10 s in every process, and per evaluation it is as
fast or faster at most shapes (``benchmarks/results/compile.json`` and
``kernel.json``; docs/bayes.md).  The test
suite checks value and gradient against PyMC's own ``model.logp()`` and
against finite differences.

The gradient is derived by hand (reverse mode, written out):

- likelihood: with responsibilities ``r_nk``, ``d/dmu_k = P_k sum_n r_nk
  (z_n - mu_k)`` and ``d/dSigma_k = (P_k S_k P_k - N_k P_k) / 2`` where
  ``P_k = Sigma_k^-1``, ``S_k = sum_n r_nk (z_n - mu_k)(z_n - mu_k)^T``
  and ``N_k = sum_n r_nk``;
- ``Sigma = A A^T + diag(reg)`` with ``A = diag(sd) C``: ``d/dA = 2 G A``;
- the C-vine map from partial correlations ``z`` to the correlation Cholesky
  factor ``C`` (``C_ij = z_ij prod_{m<j} sqrt(1 - z_im^2)``): ``dC_ij/dz_ij =
  C_ij / z_ij`` and ``dC_ij/dz_im = -C_ij z_im / (1 - z_im^2)`` for ``m < j``;
- PyMC's transforms: simplex (weights), log (standard deviations), log-odds
  (partial correlations as ``u = (z + 1) / 2``).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.special import betaln, gammaln

from bayesgmm.bayes._kernel import DIAG, FULL, SPHERICAL, TIED, log_density_grad, pattern_sorted
from bayesgmm.bayes.spec import ModelData, parameter_layout

__all__ = ["MixtureDensity", "parameter_layout"]  # parameter_layout: from spec

_LOG_2PI = np.log(2.0 * np.pi)
_COV_CODES = {"full": FULL, "tied": TIED, "diag": DIAG, "spherical": SPHERICAL}


@dataclass
class MixtureDensity:
    """``x -> (log p, gradient)`` of the model over the flat unconstrained vector.

    The data and prior settings are fixed at construction (building one is
    cheap: nothing is compiled per data set).

    Parameters
    ----------
    n_components, n_features : int
        ``K`` and ``D``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance structure.
    data : ModelData
        Standardized data and prior settings (:func:`bayesgmm.bayes.model.model_data`).

    Attributes
    ----------
    names, slices, shapes : list
        Layout of the value variables in the flat vector.
    n_dim : int
        Length of the flat vector.
    kernel_args : tuple
        Arguments of :func:`bayesgmm.bayes._kernel.log_density_grad` after
        ``theta`` and ``grad``: data, prior settings and constants.

    Examples
    --------
    >>> from bayesgmm.bayes.spec import model_data
    >>> X = np.random.default_rng(0).normal(size=(50, 2))
    >>> dens = MixtureDensity(2, 2, "full", model_data(X, 2))
    >>> value, grad = dens.value_and_grad(np.zeros(dens.n_dim))
    >>> grad.shape
    (11,)
    """

    n_components: int
    n_features: int
    covariance_type: str
    data: ModelData
    names: list[str] = field(init=False)
    slices: list[slice] = field(init=False)
    shapes: list[tuple[int, ...]] = field(init=False)
    n_dim: int = field(init=False)
    kernel_args: tuple[Any, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        layout = parameter_layout(self.n_components, self.n_features, self.covariance_type,
                                  self.data.concentration_prior is not None)
        self.names = [name for name, _ in layout]
        self.shapes = [shape for _, shape in layout]
        sizes = [int(np.prod(s)) for s in self.shapes]
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in itertools.pairwise(offsets)]
        self.n_dim = int(offsets[-1])
        self.kernel_args = self._kernel_arguments()

    def _kernel_arguments(self) -> tuple[Any, ...]:
        """The kernel's arguments: data, prior settings, normalizing constants."""
        md, K, D = self.data, self.n_components, self.n_features
        Z = pattern_sorted(md.X_std)  # NaN (missing) kept; a pattern's rows together
        if Z.ndim != 2 or Z.shape[1] != D:
            raise ValueError(f"X_std must have shape (n_samples, {D}); got {Z.shape}.")
        alpha = np.broadcast_to(np.asarray(md.weights_concentration, dtype=float), (K,)).copy()
        mscale = np.asarray(md.means_scale, dtype=float)
        sd_shape = self.shapes[self.names.index("sd_std_log__")]
        s_scale = np.asarray(md.sd_scale, dtype=float)
        sd_sigma = (np.full(sd_shape, s_scale.mean()) if self.covariance_type == "spherical"
                    else np.broadcast_to(s_scale, sd_shape))
        const = -K * np.sum(0.5 * _LOG_2PI + np.log(mscale))  # Normal means
        const += np.sum(0.5 * np.log(2.0 / np.pi) - np.log(sd_sigma))  # HalfNormal sds
        if K > 1 and md.concentration_prior is not None:
            # sampled alpha ~ Gamma(shape, rate): the kernel adds the terms that depend on
            # alpha; it reads the hyperprior from alpha = [-shape, rate, 0, ...] (negative
            # first entry: sampled), which keeps the kernel's and the C callback's arguments
            shape, rate = (float(v) for v in md.concentration_prior)
            const += shape * np.log(rate) - gammaln(shape) + np.log(K)
            alpha = np.zeros(K)
            alpha[:2] = -shape, rate
        elif K > 1:  # Dirichlet, with the simplex log-Jacobian's log K
            const += gammaln(alpha.sum()) - gammaln(alpha).sum() + np.log(K)
        beta_a = np.zeros(0)
        if "cpc_u_logodds__" in self.names:  # Beta(a, a) partial correlations
            cols = np.tril_indices(D, k=-1)[1]
            beta_a = float(md.lkj_eta) + (D - 2 - cols.astype(float)) / 2.0
            n_matrices = K if self.covariance_type == "full" else 1
            const -= n_matrices * np.sum(betaln(beta_a, beta_a))
        return (
            Z,
            np.ascontiguousarray(md.reg_diag, dtype=np.float64),
            alpha,
            np.ascontiguousarray(md.means_loc, dtype=np.float64),
            np.ascontiguousarray(mscale),
            np.ascontiguousarray(sd_sigma, dtype=np.float64).ravel(),
            np.ascontiguousarray(beta_a, dtype=np.float64),
            float(const),
            K,
            _COV_CODES[self.covariance_type],
        )

    # -- layout ---------------------------------------------------------------

    def flatten(self, point: Mapping[str, np.ndarray]) -> np.ndarray:
        """Pack unconstrained values into the flat vector.

        Parameters
        ----------
        point : mapping
            Values keyed by value-variable name.  A sampled concentration
            missing from it (``alpha_log__``; e.g. starting values from an EM
            fit) is set to the log of its prior mean.

        Returns
        -------
        ndarray of shape (n_dim,)
        """
        out = np.empty(self.n_dim)
        prior = self.data.concentration_prior
        if "alpha_log__" in self.names and "alpha_log__" not in point and prior is not None:
            point = {**point, "alpha_log__": np.log(prior[0] / prior[1])}
        for name, sl, shape in zip(self.names, self.slices, self.shapes, strict=True):
            out[sl] = np.broadcast_to(np.asarray(point[name], dtype=float), shape).ravel()
        return out

    def unflatten(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Split flat vectors (any leading dims) into named arrays.

        Parameters
        ----------
        x : ndarray of shape (..., n_dim)

        Returns
        -------
        dict
            Value-variable name to array of shape ``(..., *shape)``.
        """
        lead = x.shape[:-1]
        return {
            name: x[..., sl].reshape((*lead, *shape))
            for name, sl, shape in zip(self.names, self.slices, self.shapes, strict=True)
        }

    # -- evaluation -----------------------------------------------------------

    def value_and_grad(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        """Joint log-density (with log-Jacobians) and its gradient at ``x``.

        Safe to call from several threads at once (the kernel runs without the
        GIL and writes only into a fresh gradient array).

        Parameters
        ----------
        x : ndarray of shape (n_dim,)
            Flat unconstrained point.

        Returns
        -------
        value : float
            ``-inf`` where a covariance is not positive definite (only possible
            with ``reg_covar = 0``).
        grad : ndarray of shape (n_dim,)
            A fresh array.
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.n_dim,):
            raise ValueError(f"x must have shape ({self.n_dim},); got {x.shape}.")
        grad = np.empty(self.n_dim)
        value = log_density_grad(x, grad, *self.kernel_args)
        return float(value), grad

    @property
    def n_rows(self) -> int:
        """Number of data rows."""
        return int(self.kernel_args[0].shape[0])

    def value_and_grad_rows(self, x: np.ndarray, rows: np.ndarray,
                            scale: float = 1.0) -> tuple[float, np.ndarray]:
        """Log-density with the likelihood of some rows only, scaled; and its gradient.

        ``log prior(x) + log-Jacobians + scale * sum_{n in rows} log p(z_n | x)``:
        with ``rows`` a uniformly random minibatch and ``scale = n_rows / len(rows)``,
        an unbiased estimate of :meth:`value_and_grad` (minibatch ADVI,
        :func:`bayesgmm.bayes.vi.fit_minibatch_advi`).  The kernel is run on the
        rows and on no rows (the prior term alone, ``K D^3`` work); the
        likelihood is their difference, as the kernel's value and gradient are
        the prior's plus a sum over rows.

        Parameters
        ----------
        x : ndarray of shape (n_dim,)
            Flat unconstrained point.
        rows : ndarray of int
            Row indices in the kernel's row order (``kernel_args[0]``: the data
            with each missingness pattern's rows together; sorted indices keep
            them together).  Rows may repeat.
        scale : float, default=1.0
            Factor on the rows' log-likelihood.

        Returns
        -------
        value : float
            ``-inf`` where a covariance is not positive definite.
        grad : ndarray of shape (n_dim,)
            A fresh array.

        Examples
        --------
        >>> from bayesgmm.bayes.spec import model_data
        >>> X = np.random.default_rng(0).normal(size=(40, 2))
        >>> dens = MixtureDensity(2, 2, "full", model_data(X, 2))
        >>> x = np.zeros(dens.n_dim)
        >>> halves = [dens.value_and_grad_rows(x, r, 2.0)[0] for r in np.split(np.arange(40), 2)]
        >>> bool(np.isclose(np.mean(halves), dens.logp(x)))
        True
        """
        x = np.ascontiguousarray(x, dtype=np.float64)
        if x.shape != (self.n_dim,):
            raise ValueError(f"x must have shape ({self.n_dim},); got {x.shape}.")
        Z, *rest = self.kernel_args
        prior_grad = np.empty(self.n_dim)
        prior = log_density_grad(x, prior_grad, Z[:0], *rest)
        grad = np.empty(self.n_dim)
        value = log_density_grad(x, grad, np.ascontiguousarray(Z[rows]), *rest)
        if not np.isfinite(value):
            return float(value), grad
        grad -= prior_grad
        grad *= scale
        grad += prior_grad
        return float(prior + scale * (value - prior)), grad

    def logp(self, x: np.ndarray) -> float:
        """Joint log-density at ``x`` (see :meth:`value_and_grad`).

        Parameters
        ----------
        x : ndarray of shape (n_dim,)

        Returns
        -------
        float
        """
        return self.value_and_grad(x)[0]


