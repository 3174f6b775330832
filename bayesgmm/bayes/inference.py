"""Run NUTS or ADVI on a model from :func:`bayesgmm.bayes.model.build_gmm_model`.

The log-density NUTS runs on
----------------------------
With the default sampler, ``"nutpie"``, nutpie's Rust NUTS calls bayesgmm's
own Numba kernel (:mod:`bayesgmm.bayes.density`), handed over as a C callback
(:mod:`bayesgmm.bayes._nutpie_bridge`): it is compiled once per machine in a
few seconds (Numba's disk cache), holds no state, and never takes the GIL
while sampling, so chains and concurrent fits run in parallel.  The kernel
computes the same log-density as the PyMC model (checked in the test suite),
with missing entries too: each row's observed part, marginalised per
missingness pattern (:mod:`bayesgmm.bayes._kernel`).
``"nutpie_native"`` lets nutpie compile the PyMC model with PyTensor, and
``"pymc"`` (or ``"numpyro"``/``"blackjax"``) runs ``pm.sample``; both pay
PyTensor's compilation of the model (9-10 s in every process for
``"nutpie_native"``, ``benchmarks/results/compile.json``).
Everything the user sees (weights, means, covariances) is computed from the
unconstrained draws with NumPy (:mod:`bayesgmm.bayes.params`), so no second
graph is compiled for deterministics or the pointwise log-likelihood.

ADVI and full-rank ADVI run on the same kernel (:mod:`bayesgmm.bayes.vi`), or
with ``engine="pymc"`` through :func:`pymc.fit` with a loss-window convergence
callback; the fitted Gaussian approximation is sampled with NumPy in the
unconstrained space and mapped back, giving draws in the same layout as NUTS
(one chain).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

# arviz_base first, while the stack is shallow and few modules are loaded: its
# io_numpyro module asks lazy_loader for jax and numpyro, and for each one that
# is not installed lazy_loader calls inspect.stack(), whose cost grows with the
# stack depth times the modules loaded. Imported later, from inside nutpie's
# import of ArviZ after PyMC, that took 4.9 s of a 10.5 s import of the Bayesian
# stack (python -X importtime on the loaded 2-core machine, issue 16).
import arviz_base  # noqa: F401
import numpy as np
import pymc as pm
import pytensor
import xarray as xr

from bayesgmm.bayes import _nutpie_bridge, vi
from bayesgmm.bayes.density import MixtureDensity
from bayesgmm.bayes.model import ModelData
from bayesgmm.bayes.params import raw_from_unconstrained, unconstrained_from_raw
from bayesgmm.exceptions import SamplerFallbackWarning

__all__ = [
    "DEFAULT_SAMPLER",
    "SUPPORTED_METHODS",
    "InferenceOutput",
    "LossWindowConvergence",
    "available_samplers",
    "clear_cache",
    "kernel_mismatch",
    "model_data_of",
    "model_log_density",
    "model_structure",
    "run_advi",
    "run_nuts",
]

SUPPORTED_METHODS = ("nuts", "advi", "fullrank_advi")
#: Chosen after measuring (docs/bayes.md): nutpie driving bayesgmm's Numba kernel.
DEFAULT_SAMPLER = "nutpie"
_PYMC_SAMPLERS = ("pymc", "numpyro", "blackjax")
_SAMPLER_MODULES = {"nutpie": "nutpie", "nutpie_native": "nutpie", "pymc": "pymc",
                    "numpyro": "numpyro", "blackjax": "blackjax"}
# sample_stats names kept from the samplers, mapped to ArviZ's names
_NUTPIE_STATS = {
    "diverging": "diverging",
    "depth": "tree_depth",
    "maxdepth_reached": "reached_max_treedepth",
    "energy": "energy",
    "step_size": "step_size",
    "mean_tree_accept": "acceptance_rate",
    "n_steps": "n_steps",
    "logp": "lp",
}
_PYMC_STATS = ("diverging", "tree_depth", "reached_max_treedepth", "energy", "step_size",
               "acceptance_rate", "n_steps", "lp")


def available_samplers() -> tuple[str, ...]:
    """NUTS samplers usable here.

    Returns
    -------
    tuple of str
        ``"nutpie"`` and ``"nutpie_native"`` when nutpie is installed,
        ``"pymc"``, and ``"numpyro"`` / ``"blackjax"`` when installed.

    Examples
    --------
    >>> "pymc" in available_samplers()
    True
    """
    return tuple(
        name for name, mod in _SAMPLER_MODULES.items()
        if importlib.util.find_spec(mod) is not None
    )


# ---------------------------------------------------------------------------
# the log-density
# ---------------------------------------------------------------------------


def model_structure(model: pm.Model) -> tuple[int, int, str]:
    """``(n_components, n_features, covariance_type)`` read from a model's variables.

    The shapes of ``mu_std`` (K, D), ``sd_std`` and the presence of ``cpc_u``
    tell them apart; where two structures give the same shapes (one feature,
    or one component) they are the same model.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayesgmm.bayes.model.build_gmm_model`.

    Returns
    -------
    tuple
        ``(K, D, covariance_type)``.

    Examples
    --------
    >>> from bayesgmm.bayes.model import build_gmm_model
    >>> model_structure(build_gmm_model(np.random.default_rng(0).normal(size=(30, 2)), 3, "tied"))
    (3, 2, 'tied')
    """
    k, d = (int(n) for n in model["mu_std"].type.shape)
    sd_dims = model["sd_std"].type.ndim
    if "cpc_u" in model.named_vars:
        kind = "full" if model["cpc_u"].type.ndim == 2 else "tied"
    elif sd_dims == 2:
        kind = "diag" if d > 1 else "full"
    else:
        sd_len = int(model["sd_std"].type.shape[0])  # tied with D > 1 has cpc_u
        kind = "spherical" if d > 1 or sd_len == k else "tied"
    return k, d, kind


def model_data_of(model: pm.Model) -> ModelData:
    """The data and prior settings held in a model's data containers.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayesgmm.bayes.model.build_gmm_model`.

    Returns
    -------
    ModelData
    """
    values = {name: np.asarray(var.get_value(), dtype=float)
              for name, var in model.named_vars.items()
              if isinstance(var, pytensor.compile.SharedVariable)}
    X_std = values["X_std"]
    if "observed_mask" in values:  # missing entries held at 0 in the container
        X_std = np.where(values["observed_mask"] > 0, X_std, np.nan)
    return ModelData(
        X_std=X_std, center=values["center"], scale=values["scale"],
        weights_concentration=values["weights_concentration"], means_loc=values["means_loc"],
        means_scale=values["means_scale"], sd_scale=values["sd_scale"],
        lkj_eta=float(values["lkj_eta"]), reg_diag=values["reg_diag"],
        concentration_prior=values.get("concentration_prior"),
    )


def _graph_inputs(model: pm.Model) -> dict[str, Any]:
    """A model's value variables and data containers, by name."""
    inputs = {v.name: v for v in model.value_vars}
    inputs.update({name: var for name, var in model.named_vars.items()
                   if isinstance(var, pytensor.compile.SharedVariable)})
    return inputs


def kernel_mismatch(model: pm.Model) -> str | None:
    """Why bayesgmm's kernel would not compute this model's log-density, or None.

    The kernel implements exactly the model :func:`build_gmm_model` writes.
    A model that was edited afterwards (a variable added, a prior replaced,
    a potential added) has another log-density; it is rebuilt here from its
    own data containers and the two log-density graphs are compared node by
    node (:func:`pytensor.graph.basic.equal_computations`, inputs matched by
    name).

    Parameters
    ----------
    model : pymc.Model

    Returns
    -------
    str or None
        None when the kernel computes this model's log-density; otherwise the
        reason, in words.

    Examples
    --------
    >>> from bayesgmm.bayes.model import build_gmm_model
    >>> model = build_gmm_model(np.random.default_rng(0).normal(size=(30, 2)), 2, "diag")
    >>> kernel_mismatch(model) is None
    True
    >>> with model:
    ...     _ = pm.Potential("shrink", -model["mu_std"].sum() ** 2)
    >>> kernel_mismatch(model)
    'the model has variables that bayesgmm does not write: shrink'
    """
    from pytensor.graph.basic import equal_computations

    from bayesgmm.bayes.model import model_from_data

    try:
        k, _, kind = model_structure(model)
        md = model_data_of(model)
        reference = model_from_data(md, k, kind)
    except Exception as err:  # a model bayesgmm did not write at all
        return f"it is not a bayesgmm model ({type(err).__name__}: {err})"
    extra = sorted(set(model.named_vars) - set(reference.named_vars))
    missing = sorted(set(reference.named_vars) - set(model.named_vars))
    if extra:
        return "the model has variables that bayesgmm does not write: " + ", ".join(extra)
    if missing:
        return "the model lacks variables bayesgmm writes: " + ", ".join(missing)
    mine, theirs = _graph_inputs(model), _graph_inputs(reference)
    if set(mine) != set(theirs):
        return "its value variables or data containers differ from bayesgmm's"
    names = sorted(mine)
    if not equal_computations([model.logp()], [reference.logp()],
                              in_xs=[mine[n] for n in names],
                              in_ys=[theirs[n] for n in names]):
        return "its log-density differs from the one bayesgmm writes (an edited prior?)"
    return None


def _mismatch(model: pm.Model, built_here: bool) -> str | None:
    """:func:`kernel_mismatch`, or None for a model just built by bayesgmm."""
    return None if built_here else kernel_mismatch(model)


def model_log_density(model: pm.Model) -> MixtureDensity:
    """The kernel's ``x -> (log p, gradient)`` for a model.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayesgmm.bayes.model.build_gmm_model`.

    Returns
    -------
    MixtureDensity
        Built from the model's data containers; Numba compiles (or loads from
        its disk cache) the kernel on the first evaluation.

    Examples
    --------
    >>> from bayesgmm.bayes.model import build_gmm_model
    >>> X = np.random.default_rng(0).normal(size=(30, 2))
    >>> density = model_log_density(build_gmm_model(X, 2, "diag"))
    >>> density.names
    ['w_simplex__', 'mu_std', 'sd_std_log__']
    """
    k, d, kind = model_structure(model)
    return MixtureDensity(k, d, kind, model_data_of(model))


_NATIVE_CACHE: dict[tuple[Any, ...], Any] = {}
_NATIVE_GUARD = threading.Lock()


def clear_cache() -> None:
    """Forget the models nutpie compiled in this process (``sampler="nutpie_native"``).

    Examples
    --------
    >>> clear_cache()
    """
    with _NATIVE_GUARD:
        _NATIVE_CACHE.clear()


def _native_nutpie(model: pm.Model, edited: bool) -> Any:
    """Compile the PyMC model with nutpie itself (one Numba C callback), cached per shape.

    An ``edited`` model (see :func:`kernel_mismatch`) is compiled on its own, never cached.
    """
    import nutpie

    if edited:
        return nutpie.compile_pymc_model(model)
    key = (*model_structure(model), "observed_mask" in model.named_vars)
    with _NATIVE_GUARD:
        if key not in _NATIVE_CACHE:
            _NATIVE_CACHE[key] = nutpie.compile_pymc_model(model)
        return _NATIVE_CACHE[key]


# ---------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------


@dataclass
class InferenceOutput:
    """Raw output of one inference run.

    Attributes
    ----------
    raw : dict
        Draws of the model variables (``w``, ``mu_std``, ``sd_std``,
        ``cpc_u``), shape ``(chain, draw, ...)``.
    sample_stats : xarray.Dataset or None
        NUTS statistics with ArviZ names (``diverging``, ``tree_depth``, ...).
    variational : xarray.Dataset or None
        ADVI: the loss (negative ELBO) per step and convergence attributes.
    timing : dict
        ``compile`` and ``sample`` seconds.
    converged : bool
        ADVI: stopped by the convergence callback; NUTS: True.
    n_iter : int or None
        ADVI steps run.
    """

    raw: dict[str, np.ndarray]
    sample_stats: xr.Dataset | None
    variational: xr.Dataset | None
    timing: dict[str, float]
    converged: bool = True
    n_iter: int | None = None


def _jittered_init(density: MixtureDensity,
                   init_raw: Mapping[str, np.ndarray] | None,
                   jitter: float) -> Callable[[Any], np.ndarray]:
    base = None if init_raw is None else density.flatten(unconstrained_from_raw(init_raw))

    def init(seed: Any) -> np.ndarray:
        rng = np.random.default_rng(seed)
        start = np.zeros(density.n_dim) if base is None else base
        return start + rng.uniform(-jitter, jitter, size=density.n_dim)

    return init


def _model_init(
    model: pm.Model, init_raw: Mapping[str, np.ndarray] | None
) -> dict[str, np.ndarray] | None:
    """Starting values restricted to the model's free variables."""
    if init_raw is None:
        return None
    names = {rv.name for rv in model.free_RVs}
    return {k: v for k, v in init_raw.items() if k in names}


@dataclass(frozen=True)
class _NutsSettings:
    """What every NUTS backend is asked to do."""

    draws: int
    tune: int
    chains: int
    cores: int
    random_seed: int
    progressbar: bool
    target_accept: float
    init_raw: Mapping[str, np.ndarray] | None


def run_nuts(
    model: pm.Model,
    *,
    draws: int,
    tune: int,
    chains: int,
    random_seed: int,
    progressbar: bool = True,
    sampler: str = DEFAULT_SAMPLER,
    init_raw: Mapping[str, np.ndarray] | None = None,
    target_accept: float = 0.9,
    cores: int | None = None,
    built_here: bool = False,
) -> InferenceOutput:
    """Sample the model with NUTS.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayesgmm.bayes.model.build_gmm_model`.
    draws, tune, chains : int
        Kept draws per chain, tuning steps per chain, chains.
    random_seed : int
        Seed.
    progressbar : bool, default=True
        Show progress.
    sampler : str, default=DEFAULT_SAMPLER
        ``"nutpie"`` (nutpie's Rust NUTS calling bayesgmm's Numba kernel),
        ``"nutpie_native"`` (nutpie compiles the PyMC model: 9-10 s in every
        new process, not cached on disk; ``benchmarks/results/compile.json``),
        or a PyMC ``nuts_sampler`` (``"pymc"``, and ``"numpyro"``/``"blackjax"``
        if installed).
    init_raw : mapping, optional
        Starting values of ``w``, ``mu_std``, ``sd_std``, ``cpc_u`` (e.g. from
        the EM fit); each chain starts from a small jitter around them.
    target_accept : float, default=0.9
        Target acceptance rate of the step-size adaptation.
    cores : int, optional
        Chains run in parallel (default: ``min(chains, cpu count)``).
    built_here : bool, default=False
        The model comes straight from :func:`bayesgmm.bayes.model.build_gmm_model`
        (``BayesGMM.fit`` passes True): no one could have edited it, so the
        graph comparison of :func:`kernel_mismatch` (0.3 s) is skipped.

    Returns
    -------
    InferenceOutput

    Notes
    -----
    Nothing is shared between fits but compiled code (the kernel holds no
    state; nutpie's native model is copied with each fit's data), so fits from
    several threads run at once.
    """
    if sampler not in _SAMPLER_MODULES:
        raise ValueError(
            f"sampler must be one of {list(available_samplers())}; got {sampler!r}."
        )
    settings = _NutsSettings(
        draws=draws, tune=tune, chains=chains,
        cores=cores or max(1, min(chains, os.cpu_count() or 1)),
        random_seed=random_seed, progressbar=progressbar, target_accept=target_accept,
        init_raw=init_raw,
    )
    mismatch = (_mismatch(model, built_here) if sampler in ("nutpie", "nutpie_native")
                else None)
    if mismatch is not None and sampler == "nutpie":
        warnings.warn(
            f"bayesgmm: the fast kernel does not compute this model's log-density ({mismatch}); "
            "sampling the model's own PyMC graph with nutpie instead (PyTensor compiles it: "
            "slower to start).",
            SamplerFallbackWarning, stacklevel=3,
        )
        sampler = "nutpie_native"
    if sampler == "nutpie":
        raw, stats, t_compile, t_sample = _sample_nutpie(model, settings)
    elif sampler == "nutpie_native":
        raw, stats, t_compile, t_sample = _sample_nutpie_native(
            model, settings, edited=mismatch is not None)  # else bayesgmm's own layout
    else:
        raw, stats, t_compile, t_sample = _sample_pymc(model, settings, sampler)
    stats = stats.drop_vars([c for c in stats.coords if c not in ("chain", "draw")])
    stats = stats.assign_coords(chain=np.arange(chains), draw=np.arange(draws))
    return InferenceOutput(
        raw=raw, sample_stats=stats, variational=None,
        timing={"compile": t_compile, "sample": t_sample},
    )


_Sampled = tuple[dict[str, np.ndarray], xr.Dataset, float, float]


def _nutpie_result(trace: Any, names: tuple[str, ...] | None) -> tuple[dict, xr.Dataset]:
    """Raw draws and ArviZ-named stats from a nutpie trace."""
    post = trace["posterior"].to_dataset()
    if names is None:  # the native model's posterior holds the model variables
        raw = {n: post[n].values for n in ("w", "mu_std", "sd_std", "cpc_u") if n in post}
    else:  # the unconstrained vector's pieces
        raw = raw_from_unconstrained({n: post[n].values for n in names})
    st = trace["sample_stats"].to_dataset()
    stats = xr.Dataset({new: st[old] for old, new in _NUTPIE_STATS.items() if old in st})
    return raw, stats


def _run_nutpie(nutpie_model: Any, settings: _NutsSettings,
                names: tuple[str, ...] | None) -> tuple[dict, xr.Dataset, float]:
    """Run :func:`nutpie.sample`; raw draws, stats and sampling seconds."""
    import nutpie

    t0 = time.perf_counter()
    # nutpie.sample(blocking=True) catches Ctrl-C and returns the draws so far; waiting
    # here instead lets the interrupt stop the fit, with no partial result
    sampler = nutpie.sample(
        nutpie_model, draws=settings.draws, tune=settings.tune, chains=settings.chains,
        cores=settings.cores, seed=settings.random_seed, progress_bar=settings.progressbar,
        target_accept=settings.target_accept, blocking=False,
    )
    try:
        trace = sampler.wait()
    except KeyboardInterrupt:
        sampler.cancel()
        raise
    t_sample = time.perf_counter() - t0
    raw, stats = _nutpie_result(trace, names)
    return raw, stats, t_sample


def _python_model(density: MixtureDensity, initial_point: Callable[[Any], np.ndarray]) -> Any:
    """The kernel for nutpie through Python calls (when the C-callback route is missing)."""
    from nutpie.compiled_pyfunc import from_pyfunc

    density.value_and_grad(np.zeros(density.n_dim))  # compile or load the kernel

    def make_logp_fn() -> Callable[..., Any]:
        return lambda x, **_: density.value_and_grad(x)

    def make_expand_fn(*_: Any) -> Callable[..., Any]:
        return lambda x, **_: density.unflatten(x)

    return from_pyfunc(
        ndim=density.n_dim,
        make_logp_fn=make_logp_fn,
        make_expand_fn=make_expand_fn,
        expanded_dtypes=[np.dtype("float64")] * len(density.names),
        expanded_shapes=density.shapes,
        expanded_names=density.names,
        make_initial_point_fn=initial_point,
    )


def _sample_nutpie(model: pm.Model, settings: _NutsSettings) -> _Sampled:
    """Sample with nutpie's Rust NUTS over :func:`model_log_density`.

    The kernel goes to nutpie as a C callback (no GIL while sampling) through
    nutpie's private interface.  If that interface is not the tested one, or
    the route raises anything but an interrupt, the same kernel is sampled
    through nutpie's public ``from_pyfunc`` instead, with one
    :class:`~bayesgmm.exceptions.SamplerFallbackWarning` naming why.
    """
    t0 = time.perf_counter()
    density = model_log_density(model)
    initial_point = _jittered_init(density, settings.init_raw, 0.1)
    names = tuple(density.names)
    problem = _nutpie_bridge.interface_problem()
    if problem is None:
        try:
            nutpie_model = _nutpie_bridge.kernel_model(density, initial_point)
            t_compile = time.perf_counter() - t0
            raw, stats, t_sample = _run_nutpie(nutpie_model, settings, names)
            return raw, stats, t_compile, t_sample
        except Exception as err:  # any failure of the fast route falls back
            problem = f"{type(err).__name__}: {err}"
    warnings.warn(
        f"bayesgmm: nutpie's fast C-callback route is unavailable ({problem}); sampling the "
        "same model through nutpie's public Python interface instead (same draws, slower "
        "with several chains). Install a nutpie in the tested range to restore it.",
        SamplerFallbackWarning,
        stacklevel=4,
    )
    t0 = time.perf_counter()
    nutpie_model = _python_model(density, initial_point)
    t_compile = time.perf_counter() - t0
    raw, stats, t_sample = _run_nutpie(nutpie_model, settings, names)
    return raw, stats, t_compile, t_sample


def _sample_nutpie_native(model: pm.Model, settings: _NutsSettings, edited: bool) -> _Sampled:
    """Sample with nutpie's own compilation of the PyMC model (one C callback).

    An ``edited`` model starts from nutpie's own initial points: its layout is
    not bayesgmm's, so the EM starting values do not apply.
    """
    import dataclasses


    t0 = time.perf_counter()
    native = _native_nutpie(model, edited)
    if not edited:  # bayesgmm's layout: start near the EM solution
        layout = model_log_density(model)
        native = dataclasses.replace(
            native.with_data(**layout.data.data_dict()),
            initial_point_func=_jittered_init(layout, settings.init_raw, 0.1))
    t_compile = time.perf_counter() - t0
    raw, stats, t_sample = _run_nutpie(native, settings, None)
    return raw, stats, t_compile, t_sample


def _sample_pymc(model: pm.Model, settings: _NutsSettings, sampler: str) -> _Sampled:
    """``pm.sample`` with one of PyMC's ``nuts_sampler`` options."""
    if importlib.util.find_spec(_SAMPLER_MODULES[sampler]) is None:
        raise ImportError(
            f"sampler={sampler!r} needs the package {_SAMPLER_MODULES[sampler]!r}; install it "
            f"or use one of {list(available_samplers())}."
        )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        trace = pm.sample(
            draws=settings.draws, tune=settings.tune, chains=settings.chains,
            cores=settings.cores, model=model, random_seed=settings.random_seed,
            progressbar=settings.progressbar, nuts_sampler=sampler,
            initvals=_model_init(model, settings.init_raw),
            target_accept=settings.target_accept,
        )
    t_sample = time.perf_counter() - t0
    post = trace["posterior"].to_dataset()
    raw = {n: post[n].values for n in ("w", "mu_std", "sd_std", "cpc_u") if n in post}
    st = trace["sample_stats"].to_dataset()
    stats = xr.Dataset({n: st[n] for n in _PYMC_STATS if n in st})
    return raw, stats, float("nan"), t_sample


def _narrow_start(approx: Any, method: str, init_std: float) -> None:
    """Set the initial spread of the approximation to ``init_std``."""
    params = {p.name: p for p in approx.params}
    n = params["mu"].get_value().size
    if method == "advi":
        params["rho"].set_value(np.full(n, np.log(np.expm1(init_std))))
    else:
        # PyMC maps the diagonal of L through softplus (rho2sigma)
        L = np.eye(n) * np.log(np.expm1(init_std))
        params["L_tril"].set_value(L[np.tril_indices(n)])


class LossWindowConvergence:
    """:func:`pymc.fit` callback: stop when the mean loss stops improving.

    Compares the mean negative ELBO of the last ``window`` steps with the
    window before; stops when the improvement is below ``tolerance`` times the
    loss, or below two standard errors of the difference (no detectable
    progress).  Single-sample ELBO estimates are noisy, so comparing parameter
    values step to step (PyMC's ``CheckParametersConvergence``) rarely fires.

    Parameters
    ----------
    window : int, default=500
        Steps per window.
    tolerance : float, default=1e-3
        Relative change that counts as converged.
    """

    def __init__(self, window: int = 500, tolerance: float = 1e-3):
        self.window = window
        self.tolerance = tolerance

    def __call__(self, approx: Any, losses: np.ndarray, i: int) -> None:
        """Raise ``StopIteration`` once converged (PyMC's callback protocol).

        The rule is :func:`bayesgmm.bayes.vi.window_converged`, the one the
        kernel route uses; here a window with any non-finite loss is not judged.
        """
        w = self.window
        if i % w or len(losses) < 2 * w:
            return
        recent = np.asarray(losses[-2 * w:], dtype=float)
        if not np.all(np.isfinite(recent)):
            return
        if vi.window_converged(recent, w, self.tolerance):
            raise StopIteration(f"mean loss stopped improving over {w} steps")


def _advi_on_kernel(model: pm.Model, *, method: str, n_steps: int, draws: int,
                    random_seed: int, progressbar: bool,
                    init_raw: Mapping[str, np.ndarray] | None, tolerance: float,
                    learning_rate: float, init_std: float,
                    batch_size: int | None = None) -> InferenceOutput:
    """ADVI on the kernel's log-density (:mod:`bayesgmm.bayes.vi`): no PyTensor.

    Full batch (:func:`~bayesgmm.bayes.vi.fit_advi`), or with ``batch_size``
    rows per step (:func:`~bayesgmm.bayes.vi.fit_minibatch_advi`).
    """
    t0 = time.perf_counter()
    density = model_log_density(model)
    start = (np.zeros(density.n_dim) if init_raw is None
             else density.flatten(unconstrained_from_raw(init_raw)))
    density.value_and_grad(start)  # compile, or load from Numba's disk cache
    t_compile = time.perf_counter() - t0
    rng = np.random.default_rng(random_seed)
    minibatch = batch_size is not None and batch_size < density.n_rows
    bar = _advi_progress(n_steps, progressbar)
    trace = None
    try:
        if minibatch:
            approx, trace = vi.fit_minibatch_advi(
                density.value_and_grad_rows, start, density.n_rows, int(batch_size),
                method=method, max_steps=n_steps, learning_rate=learning_rate,
                init_std=init_std, tolerance=tolerance, window=1000,
                value_and_grad=density.value_and_grad, rng=rng,
                progress=None if bar is None else bar.update_to)
        else:
            approx = vi.fit_advi(density.value_and_grad, start, method=method,
                                 max_steps=n_steps, learning_rate=learning_rate,
                                 init_std=init_std, tolerance=tolerance, window=1000, rng=rng,
                                 progress=None if bar is None else bar.update_to)
    finally:
        if bar is not None:
            bar.close()
    t_fit = time.perf_counter() - t0 - t_compile
    flat = approx.sample(draws, rng)
    raw = {k: v[None] for k, v in raw_from_unconstrained(density.unflatten(flat)).items()}
    # one pass over the data per draw; large data: on every core (the kernel drops the GIL)
    workers = min(os.cpu_count() or 1, 8) if density.n_rows * draws > 10**7 else 1
    t_k = time.perf_counter()
    pareto_k = vi.importance_pareto_k(density.logp, approx, flat, workers=workers)
    t_pareto = time.perf_counter() - t_k
    hist = approx.loss
    attrs = {"method": method, "engine": "kernel", "converged": int(approx.converged),
             "pareto_k": pareto_k,
             "n_steps": approx.n_steps, "max_steps": int(n_steps),
             "tolerance": float(tolerance),
             "final_elbo": float(-np.nanmean(hist[-1000:])) if hist.size else float("nan")}
    if trace is not None:
        attrs.update({"batch_size": trace.batch_size, "n_epochs": trace.n_epochs,
                      "n_decays": trace.n_decays,
                      "final_learning_rate": trace.final_learning_rate,
                      "stationary_step": trace.stationary_step,
                      "moved": np.asarray(trace.moved, dtype=float),
                      "control_variate": int(trace.control_variate),
                      "n_anchors": trace.n_anchors})
    variational = xr.Dataset({"loss": (("step",), hist)}, attrs=attrs)
    return InferenceOutput(
        raw=raw, sample_stats=None, variational=variational,
        timing={"compile": t_compile, "sample": t_fit, "pareto_k": t_pareto},
        converged=approx.converged, n_iter=approx.n_steps,
    )


class _StepBar:
    """A tqdm bar over optimisation steps, fed as ``progress(step, loss)``."""

    def __init__(self, total: int):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, unit="step", desc="ADVI")

    def update_to(self, step: int, loss: float) -> None:
        self._bar.update(step - self._bar.n)
        self._bar.set_postfix_str(f"-ELBO {loss:.4g}", refresh=False)

    def close(self) -> None:
        self._bar.close()


def _advi_progress(total: int, enabled: bool) -> _StepBar | None:
    return _StepBar(total) if enabled else None


class _InterruptToStop:
    """Make Ctrl-C stop :func:`pymc.fit` and then propagate.

    PyMC's optimisation loop catches ``KeyboardInterrupt`` and returns the
    approximation reached so far as if it were the answer.  Inside this
    context (main thread only: only it receives SIGINT) the signal sets a
    flag, the :meth:`check` callback ends the loop, and leaving the context
    raises ``KeyboardInterrupt``.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None

    def _handler(self, signum: int, frame: Any) -> None:
        self.interrupted = True

    def check(self, approx: Any, losses: Any, i: int) -> None:
        """PyMC callback: stop the loop once interrupted."""
        if self.interrupted:
            raise StopIteration("interrupted")

    def __enter__(self) -> _InterruptToStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self.interrupted and exc[0] is None:
            raise KeyboardInterrupt


def _gaussian_of_pymc(approx: Any, method: str, hist: np.ndarray, converged: bool,
                      max_steps: int) -> vi.GaussianApproximation:
    """The Gaussian ``q`` that :func:`pymc.fit` found, in bayesgmm's own form."""
    params = {p.name: p.get_value() for p in approx.params}
    mean = np.asarray(params["mu"], dtype=float)
    n_dim = mean.size
    if method == "advi":
        chol = np.diag(np.logaddexp(0.0, params["rho"]))  # softplus
    else:
        chol = np.zeros((n_dim, n_dim))
        chol[np.tril_indices(n_dim)] = params["L_tril"]
        diag = np.arange(n_dim)
        chol[diag, diag] = np.logaddexp(0.0, chol[diag, diag])  # softplus, as PyMC's rho2sigma
    return vi.GaussianApproximation(method=method, mean=mean, chol=chol, loss=hist,
                                    converged=converged, max_steps=int(max_steps))


def run_advi(
    model: pm.Model,
    *,
    method: str = "advi",
    n_steps: int = 20_000,
    draws: int = 1000,
    random_seed: int = 0,
    progressbar: bool = True,
    init_raw: Mapping[str, np.ndarray] | None = None,
    tolerance: float = 1e-3,
    learning_rate: float = 0.01,
    init_std: float = 0.1,
    engine: str = "kernel",
    built_here: bool = False,
    batch_size: int | None = None,
) -> InferenceOutput:
    """Fit mean-field or full-rank ADVI and draw from it.

    By default (``engine="kernel"``) ADVI runs on bayesgmm's own log-density
    and gradient (:mod:`bayesgmm.bayes.vi`): nothing is compiled by PyTensor,
    and the optimiser and convergence rule are those of the ``pm.fit`` route.
    ``engine="pymc"`` runs :func:`pymc.fit` on the PyMC model; it is also the
    fallback, with a :class:`~bayesgmm.exceptions.SamplerFallbackWarning`,
    when the kernel route fails.

    Parameters
    ----------
    model : pymc.Model
        From :func:`bayesgmm.bayes.model.build_gmm_model`.
    method : {"advi", "fullrank_advi"}, default="advi"
        Approximation family.
    n_steps : int, default=20000
        Maximum optimisation steps.
    draws : int, default=1000
        Draws taken from the fitted approximation.
    random_seed : int, default=0
        Seed.
    progressbar : bool, default=True
        Show progress.
    init_raw : mapping, optional
        Starting means of the approximation (e.g. from the EM fit).
    tolerance : float, default=1e-3
        Convergence: relative change of the mean loss between two successive
        windows of 1000 steps (:class:`LossWindowConvergence`).
    learning_rate : float, default=0.01
        Adam learning rate.
    init_std : float, default=0.1
        Initial standard deviation of the approximation in the unconstrained
        space (PyMC starts full-rank ADVI at 1, which on standardized data
        spreads every mean over the whole data set and can merge components).
    engine : {"kernel", "pymc"}, default="kernel"
        Where the ELBO gradient comes from: bayesgmm's kernel or PyMC's graph.
    built_here : bool, default=False
        As in :func:`run_nuts`: skip the graph comparison for a model fresh
        from :func:`bayesgmm.bayes.model.build_gmm_model`.
    batch_size : int or None, default=None
        Minibatch ADVI with at most this many rows per step
        (:func:`bayesgmm.bayes.vi.fit_minibatch_advi`; kernel engine only);
        None, or at least the number of rows: full batch.  If the kernel
        route fails, the ``pm.fit`` fallback runs full batch.

    Returns
    -------
    InferenceOutput
        ``raw`` with one chain; ``variational`` holds the loss trace (and,
        for minibatches, what the schedule did: ``batch_size``, ``n_epochs``,
        ``n_decays``, ``moved``, ...).
    """
    if method not in ("advi", "fullrank_advi"):
        raise ValueError(f"method must be 'advi' or 'fullrank_advi'; got {method!r}.")
    if engine not in ("kernel", "pymc"):
        raise ValueError(f"engine must be 'kernel' or 'pymc'; got {engine!r}.")
    if batch_size is not None and engine == "pymc":
        raise ValueError("batch_size needs engine='kernel' (minibatch ADVI runs on bayesgmm's "
                         f"kernel; pm.fit here is full batch); got batch_size={batch_size!r}.")
    mismatch = _mismatch(model, built_here) if engine == "kernel" else None
    if mismatch is not None:
        warnings.warn(
            f"bayesgmm: the fast kernel does not compute this model's log-density ({mismatch}); "
            "fitting the model's own PyMC graph with pymc.fit instead.",
            SamplerFallbackWarning, stacklevel=3,
        )
        engine = "pymc"
    if engine == "kernel":
        try:
            return _advi_on_kernel(model, method=method, n_steps=n_steps, draws=draws,
                                   random_seed=random_seed, progressbar=progressbar,
                                   init_raw=init_raw, tolerance=tolerance,
                                   learning_rate=learning_rate, init_std=init_std,
                                   batch_size=batch_size)
        except Exception as err:  # any failure of the fast route falls back to PyMC
            warnings.warn(
                f"bayesgmm: ADVI on the fast log-density failed ({type(err).__name__}: {err}); "
                "fitting the same model with pymc.fit instead (slower: PyTensor compiles it"
                + ("; full batch: pm.fit does not use batch_size" if batch_size else "") + ").",
                SamplerFallbackWarning,
                stacklevel=3,
            )
    callback = LossWindowConvergence(window=1000, tolerance=tolerance)
    t0 = time.perf_counter()
    import logging

    pymc_logger = logging.getLogger("pymc")
    old_level = pymc_logger.level
    if not progressbar:
        pymc_logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*BLAS.*")
        try:
            cls = pm.ADVI if method == "advi" else pm.FullRankADVI
            fitter = cls(model=model, random_seed=random_seed,
                         start=_model_init(model, init_raw))
            _narrow_start(fitter.approx, method, init_std)
            with _InterruptToStop() as interrupt:
                approx = fitter.fit(
                    n=n_steps, progressbar=progressbar, callbacks=[callback, interrupt.check],
                    obj_optimizer=pm.adam(learning_rate=learning_rate),
                )
        finally:
            pymc_logger.setLevel(old_level)
    t_fit = time.perf_counter() - t0
    hist = np.asarray(approx.hist, dtype=float)
    n_done = int(hist.size)
    converged = n_done < n_steps
    gaussian = _gaussian_of_pymc(approx, method, hist, converged, n_steps)
    group = approx.groups[0]

    def point(x: np.ndarray) -> dict[str, np.ndarray]:
        return {name: x[sl].reshape(shape)
                for name, (_, sl, shape, _) in group.ordering.items()}

    rng = np.random.default_rng(random_seed)
    flat = gaussian.sample(draws, rng)
    values = {name: flat[:, sl].reshape(draws, *shape)
              for name, (_, sl, shape, _) in group.ordering.items()}
    raw = {k: v[None] for k, v in raw_from_unconstrained(values).items()}
    model_logp = model.compile_logp()  # same density as the kernel's: Jacobians included
    pareto_k = vi.importance_pareto_k(lambda x: float(model_logp(point(x))), gaussian, flat)
    variational = xr.Dataset(
        {"loss": (("step",), hist)},
        attrs={"method": method, "engine": "pymc", "converged": int(converged),
               "pareto_k": pareto_k, "n_steps": n_done,
               "max_steps": int(n_steps), "tolerance": float(tolerance),
               "final_elbo": float(-hist[-1]) if n_done else float("nan")},
    )
    return InferenceOutput(
        raw=raw, sample_stats=None, variational=variational,
        timing={"compile": float("nan"), "sample": t_fit}, converged=converged,
        n_iter=n_done,
    )
