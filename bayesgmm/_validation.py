"""Input checks shared by every estimator (NumPy and pandas only).

Each ``check_*``/``validate_*`` function returns the normalised value or raises
a ``ValueError`` that names the parameter, what was expected, what was given
and, where there is one, the fix.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd
from sklearn.utils import check_array

from bayesgmm._constants import COVARIANCE_TYPES, MCLUST_MODELS, SKLEARN_EQUIVALENTS

__all__ = [
    "check_X",
    "check_distinct_rows",
    "check_reg_covar_scale",
    "feature_names_of",
    "validate_choice",
    "validate_covariance_type",
    "validate_int",
    "validate_positive",
    "validate_prob",
]


def feature_names_of(X: Any, n_features: int) -> list[str]:
    """Return column names for ``X``: the DataFrame's, or ``x0, x1, ...``."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return [f"x{j}" for j in range(n_features)]


def _check_dataframe_columns(X: pd.DataFrame) -> None:
    bad = [str(c) for c, dt in X.dtypes.items() if not pd.api.types.is_numeric_dtype(dt)
           or pd.api.types.is_bool_dtype(dt)]
    if bad:
        kinds = ", ".join(f"{c!r} ({X[c].dtype})" for c in bad)
        raise ValueError(
            f"X: every column must be numeric, but {len(bad)} column(s) are not: {kinds}. "
            "Drop them or encode them as numbers before fitting, "
            f"e.g. X.drop(columns={bad!r})."
        )


def _check_missing_layout(missing: np.ndarray, names: list[str] | None, name: str,
                          columns: bool) -> None:
    """Refuse rows (and, when fitting, columns) with no observed entry."""
    empty_rows = np.flatnonzero(missing.all(axis=1))
    if empty_rows.size:
        raise ValueError(
            f"{name}: {empty_rows.size} row(s) have every entry missing (first: "
            f"{empty_rows[:5].tolist()}); they carry no information about the mixture. "
            "Drop them, e.g. X.dropna(how='all')."
        )
    empty_cols = np.flatnonzero(missing.all(axis=0)) if columns else []
    if len(empty_cols):
        col_names = [names[j] if names else f"column {j}" for j in empty_cols[:5]]
        raise ValueError(
            f"{name}: column(s) {col_names} have every entry missing. Drop them before fitting."
        )


def _describe_non_finite(arr: np.ndarray, names: list[str] | None,
                         nan_hint: str | None = "drop or impute those rows before fitting"
                         ) -> str:
    bad = ~np.isfinite(arr)
    rows = np.flatnonzero(bad.any(axis=1))
    cols = np.flatnonzero(bad.any(axis=0))
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(bad.sum()) - n_nan
    col_names = [names[j] if names else str(j) for j in cols[:5]]
    more = "" if len(cols) <= 5 else f" and {len(cols) - 5} more"
    return (
        f"X contains {n_nan} NaN and {n_inf} inf value(s), in {len(rows)} row(s) "
        f"(first: {rows[:5].tolist()}) and column(s) {col_names}{more}. "
        + (f"Missing values are not accepted here: {nan_hint}." if n_nan and nan_hint else
           "Infinite values are never accepted (NaN marks a missing entry): fix or drop "
           "those rows.")
    )


def check_X(
    X: Any,
    *,
    n_components: int | None = None,
    check_variance: bool = True,
    name: str = "X",
    allow_nan: bool = False,
    nan_hint: str = "drop or impute those rows before fitting",
) -> np.ndarray:
    """Validate data for fitting or prediction and return it as a float64 array.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        NumPy array, pandas DataFrame, or anything ``np.asarray`` accepts.
    n_components : int, optional
        When given, ``X`` must hold at least this many samples.
    check_variance : bool, default=True
        Reject columns whose values are all equal (a Gaussian fitted to them
        is degenerate). Prediction skips this check.
    name : str, default="X"
        Name used in error messages.
    allow_nan : bool, default=False
        Accept NaN as a missing entry (infinite values are still refused),
        but not a row or a column with every entry missing.
    nan_hint : str, default="drop or impute those rows before fitting"
        What the error for NaN tells the user to do when ``allow_nan`` is
        False.

    Returns
    -------
    numpy.ndarray of shape (n_samples, n_features)
        C-contiguous float64 copy or view of ``X``.

    Raises
    ------
    ValueError
        If ``X`` is not 2-D, is empty, holds non-numeric, NaN or infinite
        values, has fewer samples than ``n_components``, or has a column of
        constant values.

    Examples
    --------
    >>> check_X([[0.0, 1.0], [1.0, 0.0]]).shape
    (2, 2)
    """
    names = None
    if isinstance(X, pd.DataFrame):
        _check_dataframe_columns(X)
        names = feature_names_of(X, X.shape[1])
    elif isinstance(X, pd.Series):
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got a pandas Series of "
            f"length {len(X)}. Use a DataFrame, e.g. series.to_frame(), for one feature."
        )
    if not hasattr(X, "ndim") and not hasattr(X, "__array__") and not hasattr(X, "tocsr"):
        X_probe = np.asarray(X, dtype=object)
    else:
        X_probe = X
    ndim = getattr(X_probe, "ndim", None)
    if ndim is not None and ndim != 2 and not hasattr(X_probe, "tocsr"):
        shape = getattr(X_probe, "shape", None)
        hint = (" Reshape your data with X.reshape(-1, 1) if it is one feature."
                if ndim == 1 else "")
        raise ValueError(
            f"{name} must be 2-D of shape (n_samples, n_features), got a {ndim}-D array "
            f"of shape {shape}.{hint}"
        )
    try:
        arr = check_array(X, dtype=np.float64, ensure_all_finite=False, order="C",
                          ensure_min_samples=1, ensure_min_features=1, input_name=name)
    except TypeError as err:
        if hasattr(X, "tocsr"):
            raise TypeError(
                f"{name}: sparse matrices are not supported by Gaussian mixtures; "
                "convert with X.toarray() first."
            ) from err
        raise TypeError(f"{name} must hold numbers only: {err}") from err
    except ValueError as err:
        msg = str(err)
        if "could not convert" in msg or ("dtype" in msg.lower() and "object" in msg.lower()):
            raise ValueError(
                f"{name} must hold numbers only; converting it to float64 failed: {msg}"
            ) from err
        raise
    missing = np.isnan(arr)
    any_missing = bool(missing.any())
    if (any_missing and not allow_nan) or np.isinf(arr).any():
        raise ValueError(_describe_non_finite(arr, names, None if allow_nan else nan_hint))
    if any_missing:
        _check_missing_layout(missing, names, name, columns=check_variance)
    n_samples = arr.shape[0]
    if n_components is not None and n_samples < n_components:
        sample_word = "1 sample" if n_samples == 1 else f"{n_samples} samples"
        raise ValueError(
            f"n_components={n_components} must be <= n_samples, but {name} has only "
            f"{sample_word} (n_samples={n_samples}). Use fewer components or more data."
        )
    if check_variance:
        if n_samples == 1:
            raise ValueError(
                f"{name} has 1 sample (n_samples=1): a Gaussian mixture needs at least 2 "
                "samples to estimate a spread."
            )
        spread = (np.nanmax(arr, axis=0) - np.nanmin(arr, axis=0)) if any_missing else np.ptp(
            arr, axis=0)
        constant = np.flatnonzero(spread == 0)
        if constant.size:
            col_names = [names[j] if names else f"column {j}" for j in constant]
            raise ValueError(
                f"{name}: every column needs some spread, but {col_names} "
                f"{'has' if len(col_names) == 1 else 'have'} a single repeated value "
                "(zero variance). Drop constant columns before fitting."
            )
    return arr


def check_distinct_rows(X: np.ndarray, n_components: int) -> None:
    """Raise if ``X`` has fewer distinct rows than ``n_components``.

    Counts distinct rows in small leading blocks first, so data with many
    distinct rows are never sorted (nor copied) in full.
    """
    for block in (X[:max(64, 8 * n_components)], X[:10_000], X):
        rows = np.ascontiguousarray(block).view(np.dtype((np.void, X.dtype.itemsize * X.shape[1])))
        distinct = np.unique(rows).shape[0]
        if distinct >= n_components:
            return
    raise ValueError(
        f"n_components={n_components} exceeds the {distinct} distinct rows of X: a mixture "
        "cannot have more components than distinct points. Use fewer components."
    )


def column_squares(X: np.ndarray, center: np.ndarray, block_elements: int) -> np.ndarray:
    """Per column, the sum over rows of ``(x - center)^2``, NaN entries skipped.

    In row blocks that hold at most 1/16 of ``X`` and at most
    ``block_elements`` numbers: no copy of ``X``, and small data are not
    copied whole either.
    """
    n, d = X.shape
    step = max(1, min(block_elements, max(1 << 12, X.size // 16)) // max(1, d))
    squares = np.zeros(d)
    for a in range(0, n, step):
        dev = X[a : a + step] - center
        dev[np.isnan(dev)] = 0.0
        squares += np.einsum("nd,nd->d", dev, dev)
    return squares


def _column_variances(X: np.ndarray, block_elements: int = 1 << 16) -> np.ndarray:
    """``np.nanvar(X, axis=0)`` in row blocks: no copy of ``X`` (nanvar makes two).

    A block holds at most 1/16 of ``X`` and ``block_elements`` numbers.

    NaN for a column with no observed entry, as ``nanvar`` (without its warning).
    """
    n, d = X.shape
    step = max(1, min(block_elements, max(1 << 12, X.size // 16)) // max(1, d))
    count, total = np.zeros(d), np.zeros(d)
    for a in range(0, n, step):
        block = X[a : a + step]
        seen = ~np.isnan(block)
        count += seen.sum(axis=0)
        total += np.where(seen, block, 0.0).sum(axis=0)
    mean = total / np.maximum(count, 1)
    squares = column_squares(X, mean, block_elements)
    return np.where(count > 0, squares / np.maximum(count, 1), np.nan)


def check_reg_covar_scale(X: np.ndarray, reg_covar: float, names: list[str]) -> str | None:
    """Describe columns whose variance ``reg_covar`` would swamp, or return ``None``.

    ``reg_covar`` is added in data units; at 0.1% or more of a column's
    variance it visibly inflates that column's covariances.
    """
    variances = _column_variances(X)
    swamped = np.flatnonzero(reg_covar >= 1e-3 * variances)
    if reg_covar == 0 or swamped.size == 0:
        return None
    cols = ", ".join(f"{names[j]!r} (variance {variances[j]:.3g})" for j in swamped[:5])
    return (
        f"reg_covar={reg_covar:g} is at least 0.1% of the variance of column(s) {cols}: it will "
        "dominate their covariance estimates. Standardise X (e.g. sklearn's StandardScaler) "
        "or lower reg_covar."
    )


def validate_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int, requiring ``value >= minimum``."""
    if isinstance(value, bool) or not isinstance(value, Integral | np.integer) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def validate_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float, requiring it to be finite and positive."""
    ok = isinstance(value, Real | np.floating | np.integer) and not isinstance(value, bool)
    if ok:
        ok = np.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}, got {value!r}.")
    return float(value)


def validate_prob(prob: Any, name: str = "prob") -> float:
    """Return ``prob`` as a float in the interval (0, 1)."""
    if not isinstance(prob, Real | np.floating) or not 0 < prob < 1:
        raise ValueError(f"{name} must be a number in the open interval (0, 1), got {prob!r}.")
    return float(prob)


def validate_choice(value: Any, name: str, choices: tuple[str, ...] | list[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise a clear ``ValueError``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}.")
    return value


def validate_covariance_type(covariance_type: Any, *, mclust: bool = False) -> str:
    """Return a valid ``covariance_type``: scikit-learn's four names or the 14 mclust models.

    Parameters
    ----------
    covariance_type : str
        The value given.
    mclust : bool, default=False
        Whether the caller fits all 14 mclust models (EMGMM). When false, the
        four mclust names that are scikit-learn types (VVV, EEE, VVI, VII) are
        accepted as aliases and returned as "full", "tied", "diag",
        "spherical"; the other ten raise a ``ValueError`` that names the
        supported ones.

    Returns
    -------
    str

    Examples
    --------
    >>> validate_covariance_type("EEE"), validate_covariance_type("VEV", mclust=True)
    ('tied', 'VEV')
    """
    if mclust:
        return validate_choice(covariance_type, "covariance_type",
                               (*COVARIANCE_TYPES, *MCLUST_MODELS))
    aliases = {model: kind for kind, model in SKLEARN_EQUIVALENTS.items()}
    if isinstance(covariance_type, str) and covariance_type in aliases:
        return aliases[covariance_type]
    if isinstance(covariance_type, str) and covariance_type in MCLUST_MODELS:
        names = ", ".join(f"{m} ({k})" for m, k in aliases.items())
        raise ValueError(
            f"covariance_type={covariance_type!r} is an mclust model that only EMGMM fits; "
            f"here covariance_type must be one of {list(COVARIANCE_TYPES)} or their mclust "
            f"names {names}."
        )
    return validate_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
