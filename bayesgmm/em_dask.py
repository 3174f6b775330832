"""EM on dask arrays and dask DataFrames (``bayesgmm[dask]``).

Each EM iteration is one map-reduce over the row chunks of the data. Every
chunk runs the in-memory engine's E-step (:mod:`bayesgmm.em`: the same
log-densities, in-place log-sum-exp and sufficient statistics) and returns
its log-likelihood and its sums of ``r``, ``r z`` and ``r z z^T`` in working
units; the statistics are merged in a tree (:data:`SPLIT_EVERY` at a time)
and the driver takes the M-step on the ``K x D`` and ``K x D x D`` arrays.
:func:`bayesgmm.em.iterate` runs the loop, so convergence, the lower bound
and its trace are those of an in-memory fit. The computation goes to the
active ``dask.distributed`` client if there is one, otherwise to dask's
local scheduler; the data are never gathered on the driver.

Passes over the data, for :meth:`bayesgmm.EMGMM.fit` on a dask collection:

1. one pass for the column means, sds, minima and maxima, the NaN and inf
   counts, and a random sample of up to :data:`SAMPLE_ROWS` rows;
2. the ``n_init`` runs of ``init_params`` (k-means++, k-means, Ward's
   clustering, the screening of ``"auto"``) run **in memory on that sample**
   with :class:`bayesgmm.EMGMM` itself; the best run's parameters start
   **one** EM run on the full data. This is the dask form of ``n_init``:
   restarts cost no passes over the full data, and the full run starts near
   its optimum, so it needs few iterations. Given ``weights_init``,
   ``means_init`` and ``precisions_init`` together, the full run starts from
   them exactly, as an in-memory fit does;
3. one pass per EM iteration;
4. one pass for the log-likelihood at the final parameters.

EM runs in the working units of :class:`bayesgmm.em._Frame`, built from the
dask-computed means and sds by the package's rule
(:func:`bayesgmm.initialization.working_scale`). The full-covariance kernel's
choice between the expanded quadratic form and the Cholesky projection uses
a bound on ``max |z|^2`` from the column minima and maxima (never below the
exact value the in-memory engine uses, so the choice errs on the exact side).

Data with missing entries (NaN) are refused by the fit, with a clear error:
EM on the observed-data likelihood (:mod:`bayesgmm.em_missing`) runs in memory
only. Prediction accepts them when the estimator's ``missing`` is
``"marginalize"``, block by block through :func:`bayesgmm.em.e_step`.

Persist data that fit in the cluster's memory (``X = X.persist()``):
otherwise every pass reads (or generates) them again from their source.

Nothing here imports dask at module level: ``import bayesgmm`` stays free
of it.
"""

from __future__ import annotations

import dataclasses
import sys
import warnings
from typing import Any, NamedTuple

import numpy as np

from bayesgmm import criteria, em
from bayesgmm._constants import COMPONENT, FEATURE, OBS
from bayesgmm._validation import (
    _check_dataframe_columns,
    check_distinct_rows,
    check_reg_covar_scale,
    check_X,
)
from bayesgmm.exceptions import ConvergenceWarning, DataWarning

__all__ = [
    "SAMPLE_ROWS",
    "SPLIT_EVERY",
    "DataSummary",
    "as_dask_array",
    "check_compare_input",
    "e_step",
    "fit",
    "icl",
    "is_dask_collection",
    "predict_proba",
    "rounding_variance",
    "run_em",
    "score_samples",
    "summarize",
]

#: Rows drawn (at random, without replacement) for the restarts and the data checks.
SAMPLE_ROWS = 100_000
#: Chunk statistics merged per task of the tree reduction.
SPLIT_EVERY = 8

_INSTALL = "pip install 'bayesgmm[dask]'"


def is_dask_collection(X: Any) -> bool:
    """Whether ``X`` is a dask collection (array, DataFrame); never imports dask.

    Examples
    --------
    >>> import numpy as np
    >>> is_dask_collection(np.zeros((2, 2)))
    False
    """
    if "dask" not in sys.modules:  # no dask collection can exist
        return False
    from dask import is_dask_collection as _is_dask

    return bool(_is_dask(X))


def _dask_array():
    try:
        import dask.array as da
    except ImportError as err:  # pragma: no cover - dask collections imply dask
        raise ImportError(f"EM on dask input needs dask[array]: {_INSTALL}") from err
    return da


def as_dask_array(X: Any, name: str = "X") -> tuple[Any, list[str] | None]:
    """Validate a dask array or DataFrame; return float64 row chunks and column names.

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)
        A DataFrame's columns must be numeric; its partition lengths are
        computed (one pass) when unknown.
    name : str, default="X"
        Name used in error messages.

    Returns
    -------
    array : dask.array.Array of shape (n_samples, n_features)
        float64, one chunk along the features, known row chunks.
    columns : list of str or None
        The DataFrame's column names; ``None`` for an array.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D, not numeric, or empty.

    Examples
    --------
    >>> import dask.array as da
    >>> arr, names = as_dask_array(da.ones((10, 3), chunks=(4, 2), dtype="int32"))
    >>> arr.dtype.name, arr.chunks, names
    ('float64', ((4, 4, 2), (3,)), None)
    """
    da = _dask_array()
    columns = getattr(X, "columns", None)
    if columns is not None and hasattr(X, "to_dask_array"):  # dask DataFrame
        _check_dataframe_columns(X)
        names = [str(c) for c in columns]
        arr = X.to_dask_array(lengths=True)
    elif isinstance(X, da.Array):
        arr, names = X, None
    else:
        raise TypeError(
            f"{name} must be a dask array or a dask DataFrame here, got {type(X).__name__}; "
            "NumPy arrays and pandas DataFrames go to the in-memory engine."
        )
    if arr.ndim != 2:
        hint = " Reshape it with X.reshape(-1, 1) if it is one feature." if arr.ndim == 1 else ""
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got a {arr.ndim}-D dask "
            f"array of shape {arr.shape}.{hint}"
        )
    if not (np.issubdtype(arr.dtype, np.number) and not np.issubdtype(arr.dtype, np.bool_)):
        raise ValueError(f"{name} must hold numbers only, got a dask array of dtype {arr.dtype}.")
    if any(np.isnan(c) for c in arr.chunks[0]):
        arr = arr.compute_chunk_sizes()
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one sample and one feature, but it has "
                         f"{arr.shape[0]} sample(s) and {arr.shape[1]} feature(s).")
    if arr.numblocks[1] > 1:
        arr = arr.rechunk({1: -1})
    arr = arr.astype(np.float64)
    return arr, names


# --------------------------------------------------------------------------
# Data summary: one pass
# --------------------------------------------------------------------------


class DataSummary(NamedTuple):
    """Column statistics of dask data and a random sample of its rows (one pass)."""

    n_samples: int
    mean: np.ndarray
    sd: np.ndarray
    low: np.ndarray
    high: np.ndarray
    n_nan: np.ndarray
    n_inf: np.ndarray
    sample: np.ndarray


def summarize(X: Any, rng: np.random.Generator, sample_rows: int = SAMPLE_ROWS) -> DataSummary:
    """Means, sds, minima, maxima, NaN and inf counts, and a row sample, in one pass.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        From :func:`as_dask_array`.
    rng : numpy.random.Generator
        Draws the sample's rows.
    sample_rows : int, default=SAMPLE_ROWS
        Rows in the sample (all rows if there are fewer).

    Returns
    -------
    DataSummary
        ``sd`` is the population sd (``ddof=0``), as in the in-memory engine.

    Examples
    --------
    >>> import dask.array as da
    >>> s = summarize(da.arange(10.0, chunks=3).reshape(5, 2), np.random.default_rng(0))
    >>> s.n_samples, s.mean.tolist(), s.sample.shape
    (5, [4.0, 5.0], (5, 2))
    """
    import dask

    da = _dask_array()
    n = X.shape[0]
    if n <= sample_rows:
        sample = X
    else:
        sample = X[np.sort(rng.choice(n, size=sample_rows, replace=False))]
    parts = dask.compute(X.mean(axis=0), X.std(axis=0), X.min(axis=0), X.max(axis=0),
                         da.isnan(X).sum(axis=0), da.isinf(X).sum(axis=0), sample)
    mean, sd, low, high, n_nan, n_inf, sample = (np.asarray(p) for p in parts)
    return DataSummary(int(n), mean, sd, low, high, n_nan, n_inf,
                       np.ascontiguousarray(sample, dtype=float))


def _check_summary(summary: DataSummary, names: list[str], n_components: int) -> None:
    """The fit-time checks of :func:`bayesgmm._validation.check_X`, from the summary.

    ``names`` label the columns in messages (``column j`` for arrays, as ``check_X`` says).
    """
    bad = summary.n_nan + summary.n_inf
    if bad.any():
        cols = [names[j] for j in np.flatnonzero(bad)[:5]]
        n_nan, n_inf = int(summary.n_nan.sum()), int(summary.n_inf.sum())
        what = ("Infinite values are never accepted: fix or drop those rows" if n_inf else
                "EM on dask input needs complete rows (missing='marginalize' runs in memory "
                "only): drop the incomplete rows, e.g. X = X.dropna() for a dask DataFrame or "
                "X = X[~dask.array.isnan(X).any(axis=1)] for a dask array, or fit a NumPy "
                "array in memory")
        raise ValueError(f"X (dask) contains {n_nan} NaN and {n_inf} inf value(s) in "
                         f"column(s) {cols}. {what}.")
    n = summary.n_samples
    if n < n_components:
        raise ValueError(
            f"n_components={n_components} must be <= n_samples, but X has only {n} "
            f"sample(s) (n_samples={n}). Use fewer components or more data."
        )
    if n == 1:
        raise ValueError("X has 1 sample (n_samples=1): a Gaussian mixture needs at least 2 "
                         "samples to estimate a spread.")
    constant = np.flatnonzero(summary.high == summary.low)
    if constant.size:
        cols = [names[j] for j in constant]
        raise ValueError(
            f"X: every column needs some spread, but {cols} "
            f"{'has' if len(cols) == 1 else 'have'} a single repeated value (zero variance). "
            "Drop constant columns before fitting."
        )
    check_distinct_rows(summary.sample, n_components)


def _frame(summary: DataSummary, covariance_type: str) -> tuple[em._Frame, float]:
    """Working units from the summary, and a bound on ``max_n |z_n|^2`` in them."""
    frame = em._Frame.from_moments(summary.mean, summary.sd, covariance_type)
    reach = np.maximum(summary.high - frame.center, frame.center - summary.low) / frame.scale
    return frame, float(np.sum(reach**2))


# --------------------------------------------------------------------------
# The map-reduce of sufficient statistics
# --------------------------------------------------------------------------


def _chunk_statistics(block: np.ndarray, frame: em._Frame,
                      kernel: em._Kernel) -> tuple[float, em._Stats]:
    """E-step on one row chunk: its working-unit log-likelihood and sufficient statistics.

    The body of ``bayesgmm.em._Pass._block`` for one chunk (sub-chunks of
    :func:`bayesgmm.em._chunk_rows` rows keep the work arrays in cache).
    """
    block = np.asarray(block, dtype=float)
    kind, k, d = kernel.type, kernel.n_components, kernel.n_features
    stats = em._Stats(k, d, kind, kernel.centers)
    total, buf = 0.0, None
    step = em._chunk_rows(k, d)
    for a in range(0, block.shape[0], step):
        zt = frame.columns(block, a, a + step)
        z2t = None
        if kernel.expanded and kind != "tied":
            z2t = em._squares(zt, kind, buf)
            buf = z2t if buf is None else buf
        resp = kernel.weighted_log_prob(zt, z2t)
        total += float(em._normalise_inplace(resp).sum())
        stats.add(zt, z2t, resp)
    return total, stats


def _combine(*parts: tuple[float, em._Stats]) -> tuple[float, em._Stats]:
    """Merge chunk results (each part has this task as its only consumer)."""
    total, stats = parts[0]
    for other_total, other in parts[1:]:
        total += other_total
        stats.merge(other)
    return total, stats


def _map_reduce(blocks: list, frame: em._Frame, kernel: em._Kernel) -> tuple[float, em._Stats]:
    """One pass: chunk statistics, merged in a tree, computed where dask computes."""
    import dask

    parts = [dask.delayed(_chunk_statistics)(b, frame, kernel) for b in blocks]
    while len(parts) > 1:
        parts = [dask.delayed(_combine)(*parts[i : i + SPLIT_EVERY])
                 for i in range(0, len(parts), SPLIT_EVERY)]
    return dask.compute(parts[0])[0]


def _row_blocks(X: Any) -> list:
    return X.to_delayed().ravel().tolist()


def run_em(
    X: Any,
    state: em.EMState,
    *,
    reg_covar: float,
    tol: float,
    max_iter: int,
    callback=None,
    summary: DataSummary | None = None,
) -> tuple[em.EMState, em.EMInfo, float]:
    """:func:`bayesgmm.em.run_em` on a dask array: one map-reduce per iteration.

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Complete data (from :func:`as_dask_array`).
    state : EMState
        Starting parameters, data units.
    reg_covar, tol, max_iter, callback
        As :func:`bayesgmm.em.run_em`.
    summary : DataSummary, optional
        The data's summary, when already computed (saves a pass).

    Returns
    -------
    state : EMState
        Parameters after the last M-step.
    info : EMInfo
        As :func:`bayesgmm.em.run_em`.
    log_likelihood : float
        Total log-likelihood at ``state`` (one more pass).

    Examples
    --------
    >>> import dask.array as da
    >>> X = np.random.default_rng(0).normal(size=(200, 2))
    >>> start = em.init_state(X, 2, "diag", reg_covar=1e-6, init_params="kmeans",
    ...                       rng=np.random.default_rng(0))
    >>> ref, _ = em.run_em(X, start, reg_covar=1e-6, tol=1e-9, max_iter=50)
    >>> out, info, ll = run_em(da.from_array(X, chunks=64), start, reg_covar=1e-6,
    ...                        tol=1e-9, max_iter=50)
    >>> bool(np.allclose(out.means, ref.means, rtol=1e-8))
    True
    """
    if summary is None:
        summary = summarize(X, np.random.default_rng(0), sample_rows=0)
    frame, bound = _frame(summary, state.covariance_type)
    blocks = _row_blocks(X)

    def expectation(work: em.EMState) -> tuple[float, em._Stats]:
        return _map_reduce(blocks, frame, em._Kernel(work, bound))

    work, info = em.iterate(expectation, frame.to_work(state), n_samples=summary.n_samples,
                            log_jacobian=frame.log_jacobian, reg=frame.reg(reg_covar),
                            reg_covar=reg_covar, tol=tol, max_iter=max_iter, callback=callback)
    total, _ = expectation(work)
    return frame.to_data(work), info, total - summary.n_samples * frame.log_jacobian


# --------------------------------------------------------------------------
# Lazy prediction
# --------------------------------------------------------------------------


def _block_e_step(block: np.ndarray, state: em.EMState, allow_nan: bool,
                  part: int) -> np.ndarray:
    """``em.e_step`` on one chunk, checked as in-memory input is; part 0 rows, 1 resp."""
    if block.shape[0] == 0:
        return np.empty((0,) if part == 0 else (0, state.weights.shape[0]))
    arr = check_X(block, check_variance=False, allow_nan=allow_nan,
                  nan_hint="EMGMM(missing='marginalize') predicts them as missing at random")
    return em.e_step(arr, state)[part]


def e_step(X: Any, state: em.EMState, *, allow_nan: bool = False) -> tuple[Any, Any]:
    """Lazy per-row log-likelihood and responsibilities of dask data at ``state``.

    Parameters
    ----------
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)
    state : EMState
    allow_nan : bool, default=False
        Treat NaN as missing entries (:mod:`bayesgmm.em_missing`) instead of
        raising when the chunk is computed.

    Returns
    -------
    log_lik : dask.array.Array of shape (n_samples,)
    resp : dask.array.Array of shape (n_samples, n_components)
        Both computed chunk by chunk with :func:`bayesgmm.em.e_step`; bad
        values (inf, or NaN unless allowed) raise ``ValueError`` at compute
        time, with row numbers counted within the chunk.
    """
    arr, _ = as_dask_array(X)
    k = state.weights.shape[0]
    log_lik = arr.map_blocks(_block_e_step, state, allow_nan, 0, drop_axis=1, dtype=float,
                             meta=np.empty((0,)))
    resp = arr.map_blocks(_block_e_step, state, allow_nan, 1, chunks=(arr.chunks[0], (k,)),
                          dtype=float, meta=np.empty((0, k)))
    return log_lik, resp


def _predict_input(estimator: Any, X: Any) -> Any:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator)
    arr, columns = as_dask_array(X)
    fitted = getattr(estimator, "feature_names_in_", None)
    if columns is not None and fitted is not None and list(columns) != list(fitted):
        raise ValueError(f"X has columns {columns}, but {type(estimator).__name__} was fitted "
                         f"with columns {list(fitted)}: pass them in that order.")
    if arr.shape[1] != estimator.n_features_in_:
        raise ValueError(
            f"X has {arr.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return arr


def predict_proba(estimator: Any, X: Any) -> Any:
    """Lazy responsibilities of a fitted estimator on dask data (``BaseGMM.predict_proba``)."""
    arr = _predict_input(estimator, X)
    return e_step(arr, estimator._point_state(), allow_nan=estimator._accepts_missing())[1]


def score_samples(estimator: Any, X: Any) -> Any:
    """Lazy log-density per row of a fitted estimator on dask data (``BaseGMM.score_samples``)."""
    arr = _predict_input(estimator, X)
    return e_step(arr, estimator._point_state(), allow_nan=estimator._accepts_missing())[0]


# --------------------------------------------------------------------------
# Fitting an EMGMM
# --------------------------------------------------------------------------


def _start(estimator: Any, sample: np.ndarray, inits: dict, rng: np.random.Generator
           ) -> em.EMState:
    """The full run's start: the previous fit, the given parameters, or the sample's best run."""
    if estimator.warm_start and hasattr(estimator, "converged_"):
        return estimator._point_state()
    k, kind = estimator.n_components, estimator.covariance_type
    if all(value is not None for value in inits.values()):
        return em.init_state(sample, k, kind, reg_covar=estimator.reg_covar,
                             init_params=estimator.init_params, rng=rng, **inits)
    from sklearn.base import clone

    on_sample = clone(estimator).set_params(warm_start=False, verbose=0)
    with warnings.catch_warnings():  # the full run gives its own warnings
        warnings.simplefilter("ignore")
        on_sample.fit(sample)
    return on_sample._point_state()


def fit(estimator: Any, X: Any) -> Any:
    """:meth:`bayesgmm.EMGMM.fit` on a dask array or DataFrame (see the module docstring).

    Parameters
    ----------
    estimator : EMGMM
        Its parameters are validated and its fitted attributes set.
    X : dask.array.Array or dask.dataframe.DataFrame of shape (n_samples, n_features)

    Returns
    -------
    EMGMM
        ``estimator``, fitted; ``result_.responsibilities`` and
        ``result_.data`` are dask-backed (lazy).
    """
    import pandas as pd
    import xarray as xr
    from sklearn.utils import check_random_state

    from bayesgmm import estimators

    est = estimator
    est._validate_params()
    arr, columns = as_dask_array(X)
    d = arr.shape[1]
    names = columns or [f"x{j}" for j in range(d)]
    rng = np.random.default_rng(
        check_random_state(est.random_state).randint(np.iinfo(np.int32).max))
    summary = summarize(arr, rng)
    _check_summary(summary, columns or [f"column {j}" for j in range(d)], est.n_components)
    inits = est._validate_inits(arr.shape[1])
    est._set_n_features(X, arr)
    if columns is not None:  # scikit-learn reads the names of pandas frames only
        est.feature_names_in_ = np.asarray(columns, dtype=object)
    # population variance of the two rows mean -/+ sd is sd^2: check_reg_covar_scale's input
    spread = np.stack([summary.mean - summary.sd, summary.mean + summary.sd])
    scale_problem = check_reg_covar_scale(spread, est.reg_covar, names)
    if scale_problem:
        warnings.warn(scale_problem, DataWarning, stacklevel=3)
    est._rounding = em.rounding_variance(summary.sample)
    start = _start(est, summary.sample, inits, rng)
    state, info, total = run_em(arr, start, reg_covar=est.reg_covar, tol=est.tol,
                                max_iter=est.max_iter, callback=est._progress(0),
                                summary=summary)
    n = summary.n_samples
    collapsed = est._collapsed(state, n)
    if collapsed.size:
        warnings.warn(
            f"EMGMM: component(s) {collapsed.tolist()} collapsed (onto a few points, onto the "
            f"reg_covar={est.reg_covar:g} floor, to a near-singular spread, or narrower than "
            "the data's rounding) in the dask fit; the likelihood of such a fit is spurious. "
            "Use fewer components, increase reg_covar, or rescale the data.",
            ConvergenceWarning, stacklevel=3,
        )
    if not info.converged and est.max_iter > 0:
        last = info.trace[-1] - info.trace[-2] if info.n_iter > 1 else float("nan")
        warnings.warn(
            f"EMGMM did not converge: after max_iter={est.max_iter} iterations the mean "
            f"log-likelihood still changed by {last:.3g} (tol={est.tol:g}). Increase "
            "max_iter or loosen tol.",
            ConvergenceWarning, stacklevel=3,
        )
    est._store(state, info)
    k = est.n_components
    resp = e_step(arr, state)[1]
    result = estimators._as_result(
        state, np.empty((0, k)), total, names, method="em", config=est._config(),
        converged=bool(info.converged), n_iter=int(info.n_iter),
    )
    obs = pd.RangeIndex(n, name=OBS)  # no N-long index on the driver
    est.result_ = dataclasses.replace(
        result,
        responsibilities=xr.DataArray(resp, dims=(OBS, COMPONENT),
                                      coords={OBS: obs, COMPONENT: np.arange(k)},
                                      name="responsibilities"),
        data=xr.DataArray(arr, dims=(OBS, FEATURE), coords={OBS: obs, FEATURE: names},
                          name="data"),
    )
    return est


# --------------------------------------------------------------------------
# What compare needs from a dask-backed result, without gathering it
# --------------------------------------------------------------------------


def check_compare_input(X: Any, methods: tuple[str, ...]) -> int:
    """Number of rows of dask data for :func:`bayesgmm.compare_k`, which runs EM only on them.

    Raises
    ------
    ValueError
        If ``methods`` holds a Bayesian method (it needs the data in memory).
    """
    bayes = [m for m in methods if m != "em"]
    if bayes:
        raise ValueError(
            f"methods: on dask input compare_k runs EM only, got {list(methods)}. Use "
            "methods='em', or pass X.compute() (a NumPy array) for the Bayesian fits."
        )
    return int(as_dask_array(X)[0].shape[0])


def icl(result: Any) -> float:
    """:meth:`GMMResult.icl` of a result whose responsibilities are a dask array.

    The hard-assignment entropy is summed chunk by chunk with
    :func:`bayesgmm.criteria.icl` (whose value at zero log-likelihood and
    zero parameters is that entropy term alone).
    """
    resp = result.responsibilities.data
    penalty = resp.map_blocks(lambda r: np.array([criteria.icl(0.0, 0, r)]), drop_axis=1,
                              chunks=((1,) * resp.numblocks[0],), dtype=float,
                              meta=np.empty((0,)))
    return float(result.bic() + penalty.sum().compute())


def rounding_variance(X: Any, max_rows: int = 20_000) -> np.ndarray:
    """:func:`bayesgmm.em.rounding_variance` of dask data, on evenly spaced rows."""
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, max_rows)).astype(int))
    return em.rounding_variance(np.asarray(X[rows].compute()), max_rows=max_rows)
