"""Choosing K: fit every (method, K) pair and compare them (:func:`compare_k`)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

from bayesgmm import em_dask
from bayesgmm._constants import MCLUST_MODELS
from bayesgmm._validation import check_X, validate_choice, validate_covariance_type, validate_int
from bayesgmm.compare import BAYES_METHODS, Comparison
from bayesgmm.estimators import EMGMM

__all__ = ["compare_k"]

METHODS = ("em", *BAYES_METHODS)


def _validate_methods(methods: Any) -> tuple[str, ...]:
    if isinstance(methods, str):
        methods = (methods,)
    methods = tuple(methods)
    if not methods:
        raise ValueError("methods must name at least one of " f"{list(METHODS)}, got ().")
    for method in methods:
        validate_choice(method, "methods", METHODS)
    return methods


def _validate_ks(n_components: Any, n_samples: int) -> list[int]:
    if isinstance(n_components, int):
        n_components = [n_components]
    ks = [validate_int(k, "n_components") for k in n_components]
    if not ks:
        raise ValueError("n_components must hold at least one K, got an empty range.")
    if max(ks) > n_samples:
        raise ValueError(f"n_components: K={max(ks)} exceeds the {n_samples} samples in X.")
    return sorted(set(ks))


def _validate_models(covariance_type: Any) -> list[str] | None:
    """None for one covariance type; the list of models for "all" or a list."""
    if isinstance(covariance_type, str) and covariance_type != "all":
        return None
    if isinstance(covariance_type, str):
        return list(MCLUST_MODELS)
    try:
        models = list(covariance_type)
    except TypeError:
        raise ValueError(
            "covariance_type must be a covariance type, 'all' or a list of them, got "
            f"{covariance_type!r}."
        ) from None
    if not models:
        raise ValueError("covariance_type must hold at least one model, got an empty list.")
    models = [validate_covariance_type(m, mclust=True) for m in models]
    return list(dict.fromkeys(models))


def compare_k(
    X: Any,
    n_components: Iterable[int] | int = range(1, 7),
    methods: Iterable[str] | str = ("em", "advi", "nuts"),
    covariance_type: str | Iterable[str] = "full",
    *,
    random_state: int | None = 0,
    progressbar: bool = True,
    em_kwargs: Mapping[str, Any] | None = None,
    bayes_kwargs: Mapping[str, Any] | None = None,
    sparse: bool = False,
) -> Comparison:
    """Fit every (method, K) pair and compare them in one table.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Data (NumPy array or pandas DataFrame).
    n_components : iterable of int or int, default=range(1, 7)
        Numbers of components to try.
    methods : iterable of str, default=("em", "advi", "nuts")
        Any of "em", "advi", "fullrank_advi", "nuts".
    covariance_type : str, "all" or list of str, default="full"
        Covariance parametrisation of every fit: scikit-learn's four names or
        one of the 14 mclust models (EII ... VVV, :mod:`bayesgmm.parsimonious`).
        ``"all"`` (the 14 mclust models) or a list compares the models too, as
        mclust's BIC table does: the table gets a ``model`` level beside
        ``method`` and ``K``, ``best()`` returns the :class:`~bayesgmm.compare.ModelK`
        ``(model, K)``, and ``plot()`` draws BIC against K, one line per model.
        Bayesian methods fit only the models they have (VVV, EEE, VVI, VII, i.e.
        full, tied, diag, spherical); their rows for the other models are left
        out. In such a table EM runs once per model and K by default (``n_init=1``),
        from mclust's start, model-based hierarchical clustering
        (``init_params="auto"``, see :class:`~bayesgmm.EMGMM`); pass
        ``em_kwargs={"n_init": 10}`` for restarts.
    random_state : int or None, default=0
        Seed passed to every fit.
    progressbar : bool, default=True
        Show one progress bar over all fits.
    em_kwargs : mapping, optional
        Extra :class:`~bayesgmm.EMGMM` parameters (default ``n_init=10``, or 1 in
        a table of several models).
    bayes_kwargs : mapping, optional
        Extra :class:`~bayesgmm.BayesGMM` parameters (draws, tune, chains, priors...).
    sparse : bool, default=False
        Also fit a sparse finite mixture by NUTS with ``K_max = max(n_components)``
        (``priors={"weights_concentration": "sparse"}``, with ``bayes_kwargs``):
        ``Comparison.n_clusters`` is then its posterior of the number of
        non-empty components K+ and the verdict states it beside the criteria
        (docs/n_clusters.md).

    Returns
    -------
    Comparison
        ``table``, ``best(criterion)``, ``verdict()``, ``plot()`` and the
        fitted results in ``results``.

    Notes
    -----
    A fit that raises, or warns (no convergence, poor diagnostics), stays in
    the table with its message in the ``warning`` column; the sweep goes on.
    Bayesian fits of the same K and covariance type share one compiled model.

    Examples
    --------
    >>> import bayesgmm as bg
    >>> cmp = bg.compare_k(bg.datasets.load_iris(), range(1, 4), methods="em",
    ...                    progressbar=False)
    >>> cmp.best("bic")
    2
    >>> cmp = bg.compare_k(bg.datasets.load_iris(), range(1, 4), methods="em",
    ...                    covariance_type=["VEV", "VVV"], progressbar=False)
    >>> cmp.best("bic")
    ModelK(model='VEV', K=2)
    """
    methods = _validate_methods(methods)
    refuse = "error" in ((em_kwargs or {}).get("missing"), (bayes_kwargs or {}).get("missing"))
    if em_dask.is_dask_collection(X):  # EM only, each fit a map-reduce (bayesgmm.em_dask)
        n_samples = em_dask.check_compare_input(X, methods)
    else:
        n_samples = check_X(X, allow_nan=not refuse,
                            nan_hint="missing='error' refuses them; by default every method "
                            "fits them as missing at random").shape[0]
    ks = _validate_ks(n_components, n_samples)
    models = _validate_models(covariance_type)
    if models is None:
        covariance_type = validate_covariance_type(covariance_type, mclust=True)
        if any(m != "em" for m in methods):  # Bayesian fits: VVV, EEE, VVI, VII as aliases
            validate_covariance_type(covariance_type)
        triples = [(m, covariance_type, k) for m in methods for k in ks]
    else:
        triples = [(m, c, k) for m in methods for c in models for k in ks
                   if m == "em" or _bayes_name(c) is not None]
    em_options = {"n_init": 10 if models is None else 1, **(em_kwargs or {})}
    bayes_options = dict(bayes_kwargs or {})
    results, messages = {}, {}
    bar = _progress(len(triples), progressbar)
    for method, kind, k in triples:
        key = (method, k) if models is None else (method, kind, k)
        if bar is not None:
            bar.set_description(f"{method} K={k}" if models is None else f"{method} {kind} K={k}")
        if method == "em":
            model = EMGMM(k, covariance_type=kind, random_state=random_state, **em_options)
        else:
            from bayesgmm.bayes import BayesGMM

            model = BayesGMM(k, covariance_type=_bayes_name(kind), method=method,
                             random_state=random_state, progressbar=False, **bayes_options)
        results[key], messages[key] = _fit_one(model, X)
        if bar is not None:
            bar.update()
    if bar is not None:
        bar.close()
    sparse_fit = None
    if sparse:
        from bayesgmm.bayes import BayesGMM

        priors = {**dict(bayes_options.get("priors") or {}), "weights_concentration": "sparse"}
        kind = _bayes_name(covariance_type) if models is None else "full"
        sparse_fit, messages[("sparse", max(ks))] = _fit_one(
            BayesGMM(max(ks), covariance_type=kind, method="nuts", random_state=random_state,
                     progressbar=False, **{**bayes_options, "priors": priors}), X)
    return Comparison(results, messages, sparse=sparse_fit)


def _bayes_name(kind: str) -> str | None:
    """The scikit-learn name BayesGMM fits for ``kind``; None if it has no Bayesian counterpart."""
    try:
        return validate_covariance_type(kind)
    except ValueError:
        return None


def _fit_one(model: Any, X: Any):
    """Fit ``model``; return its result (None on failure) and any messages."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = model.fit(X).result_
            error = ""
        except (ValueError, ArithmeticError, RuntimeError) as err:
            result, error = None, f"{type(err).__name__}: {err}"
    texts = [error] if error else []
    for item in caught:
        text = f"{item.category.__name__}: {item.message}"
        if issubclass(item.category, UserWarning) and text not in texts:
            texts.append(text)
    return result, " | ".join(texts)


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="fit")
