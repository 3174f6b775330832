"""Hand the Numba kernel to nutpie's Rust sampler as a C callback.

Through :func:`nutpie.compiled_pyfunc.from_pyfunc`, every gradient goes
Rust -> Python -> Numba and back; with two chains the threads then queue for
the GIL and run slower than one after the other (measured on iris, K=3: about
45 us per gradient with two chains against 26 us with one).  Here the kernel
is wrapped in a Numba ``cfunc`` with the signature nutpie's Rust core calls,
so chains never touch Python while sampling.

nutpie is imported when a fit first samples through it (:func:`_nutpie`), not
when this module is imported: nutpie imports ArviZ, arviz-plots and
matplotlib, which routes without nutpie (ADVI on the kernel) never need.
``KernelModel`` (a subclass of nutpie's ``CompiledModel``) is defined then too.

This uses nutpie's low-level model interface (``nutpie._lib``: ``LogpFunc``,
``ExpandFunc``, ``PyMcModel``, ``PySampler``), the same one nutpie's own PyMC
backend builds on.  It is not a documented API, so it is guarded three ways:
the package requires the nutpie versions it was tested with
(:data:`TESTED_NUTPIE`), :func:`interface_problem` checks the names and the
signature of the ``_make_sampler`` hook nutpie calls (against nutpie's own
PyMC backend, which nutpie keeps in step with its sampler), and callers
(:func:`bayesgmm.bayes.inference.run_nuts`) fall back to nutpie's public
``from_pyfunc`` route with a warning when the check fails or the route raises.

The data and prior settings travel in one float64 buffer, passed as the
callback's ``user_data`` pointer: a header (length, N, D, K, covariance code,
dimension, constant) then ``Z``, ``reg``, ``alpha``, ``loc``, ``mscale``,
``sd_sigma`` and ``beta_a``.  The callbacks hold no other state, so they are
cached on disk by Numba like the kernel.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np

from bayesgmm.bayes._kernel import (
    EXPAND_SIGNATURE,
    HEADER,
    LOGP_SIGNATURE,
    expand_callback,
    logp_callback,
)

__all__ = ["TESTED_NUTPIE", "interface_problem", "kernel_model", "pack_arguments"]

#: nutpie releases whose private interface this module was tested with: [lower, upper).
TESTED_NUTPIE = ((0, 16, 9), (0, 17, 0))
#: Arguments nutpie's sampler passes to ``CompiledModel._make_sampler`` (nutpie >= 0.16.9;
#: 0.16.8 passed five: no ``extra_callback`` and ``extra_callback_rate``).
MAKE_SAMPLER_ARGS = ("self", "settings", "init_mean", "cores", "progress_type",
                     "extra_callback", "extra_callback_rate", "store")


def pack_arguments(kernel_args: tuple[Any, ...], n_dim: int) -> np.ndarray:
    """Pack the kernel's arguments into the callback's float64 buffer.

    Parameters
    ----------
    kernel_args : tuple
        ``(Z, reg, alpha, loc, mscale, sd_sigma, beta_a, const, K, cov_code)``
        as given to :func:`bayesgmm.bayes._kernel.log_density_grad`.
    n_dim : int
        Length of the flat unconstrained vector.

    Returns
    -------
    ndarray of float64
        Header followed by the arrays, flattened.
    """
    Z, reg, alpha, loc, mscale, sd_sigma, beta_a, const, K, cov_code = kernel_args
    N, D = Z.shape
    arrays = [Z.ravel(), reg, alpha, loc, mscale, sd_sigma, beta_a]
    length = HEADER + sum(a.size for a in arrays)
    header = np.array([length, N, D, K, cov_code, n_dim, const], dtype=np.float64)
    return np.ascontiguousarray(np.concatenate([header, *arrays]), dtype=np.float64)


@functools.cache
def _compiled_callbacks() -> tuple[Any, Any]:
    """Compile (or load from Numba's disk cache) the two C callbacks, once per process."""
    return (nb.cfunc(LOGP_SIGNATURE, cache=True)(logp_callback),
            nb.cfunc(EXPAND_SIGNATURE, cache=True)(expand_callback))


_NEEDED = ("LogpFunc", "ExpandFunc", "PyMcModel", "PyVariable", "PySampler")


@functools.cache
def _nutpie() -> tuple[Any, type]:
    """Return nutpie's low-level module and its model base class (imported once, on first use).

    Importing nutpie imports ArviZ with arviz-plots and matplotlib (about as
    long as PyMC); routes that never sample with nutpie (ADVI on the kernel,
    EM) do not pay for it. ``(None, object)`` when nutpie's low-level
    interface (not a documented API) cannot be imported.
    """
    try:
        from nutpie import _lib
        from nutpie.sample import CompiledModel
    except ImportError:  # pragma: no cover - depends on the installed nutpie
        return None, object
    return _lib, CompiledModel


def __getattr__(name: str) -> Any:
    # ``_lib``, ``CompiledModel`` and ``KernelModel`` are module attributes that
    # import nutpie when first read (tests and callers may read them directly)
    if name == "_lib":
        return _nutpie()[0]
    if name == "CompiledModel":
        return _nutpie()[1]
    if name == "KernelModel":
        return _kernel_model_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _version_tuple(text: str) -> tuple[int, ...]:
    """``"0.16.11"`` -> ``(0, 16, 11)``; a pre-release suffix is dropped."""
    parts = []
    for piece in text.split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def interface_problem() -> str | None:
    """Why the C-callback route cannot be used with the installed nutpie.

    Returns
    -------
    str or None
        None when nutpie's version is in :data:`TESTED_NUTPIE`, ``nutpie._lib``
        has the classes this module builds, and nutpie's own PyMC backend has
        the ``_make_sampler`` signature :class:`KernelModel` implements;
        otherwise one sentence saying what differs.

    Examples
    --------
    >>> interface_problem() is None
    True
    """
    _lib = _nutpie()[0]
    if _lib is None:
        return "nutpie's low-level module nutpie._lib could not be imported"
    version = str(getattr(_lib, "__version__", "unknown"))
    low, high = TESTED_NUTPIE
    if not low <= _version_tuple(version) < high:
        return (f"nutpie {version} is outside the tested range "
                f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}")
    missing = [name for name in _NEEDED if not hasattr(_lib, name)]
    if missing:
        return f"nutpie {version}'s _lib lacks {', '.join(missing)}"
    try:
        from nutpie.compile_pymc import CompiledPyMCModel

        found = tuple(inspect.signature(CompiledPyMCModel._make_sampler).parameters)
    except (ImportError, AttributeError, TypeError, ValueError) as err:
        return f"nutpie {version}'s _make_sampler could not be inspected ({err})"
    if found != MAKE_SAMPLER_ARGS:
        return (f"nutpie {version}'s _make_sampler takes ({', '.join(found)}), "
                f"not ({', '.join(MAKE_SAMPLER_ARGS)})")
    return None


def _no_transform_adapter(*args: Any, **kwargs: Any) -> Any:
    raise NotImplementedError("nutpie's transform adaptation is not available for this model.")


@functools.cache
def _kernel_model_class() -> type:
    """:class:`KernelModel`, defined on first use (its base class is nutpie's)."""
    _lib = _nutpie()[0]

    @dataclass(frozen=True)
    class KernelModel(_nutpie()[1]):  # type: ignore[misc, valid-type]
        """A model for :func:`nutpie.sample` whose log-density is the C callback.

        Build it with :func:`kernel_model`.

        Attributes
        ----------
        names : list of str
            Names of the pieces of the flat vector (stored as draws).
        var_shapes : list of tuple
            Their shapes.
        buffer : ndarray
            Data and settings, from :func:`pack_arguments` (kept alive here).
        initial_point : callable
            ``seed -> ndarray``, a chain's starting point.
        """

        names: list[str] = field(kw_only=True)
        var_shapes: list[tuple[int, ...]] = field(kw_only=True)
        buffer: np.ndarray = field(kw_only=True, repr=False)
        initial_point: Callable[[Any], np.ndarray] = field(kw_only=True, repr=False)

        @property
        def n_dim(self) -> int:
            """Length of the flat unconstrained vector."""
            return int(sum(int(np.prod(s)) for s in self.var_shapes))

        @property
        def shapes(self) -> dict[str, tuple[int, ...]]:
            """Shape of each stored piece."""
            return dict(zip(self.names, self.var_shapes, strict=True))

        @property
        def coords(self) -> dict[str, Any]:
            """Integer coordinates of every dimension (bayesgmm labels the draws itself)."""
            return {f"{name}_dim_{i}": np.arange(size)
                    for name, shape in zip(self.names, self.var_shapes, strict=True)
                    for i, size in enumerate(shape)}

        def _make_model(self, init_mean: Any) -> Any:
            logp_cb, expand_cb = _compiled_callbacks()
            ptr = self.buffer.ctypes.data
            logp = _lib.LogpFunc(logp_cb.address, ptr, self)
            expand = _lib.ExpandFunc(self.n_dim, self.n_dim, expand_cb.address, ptr, self)
            dims = {name: [f"{name}_dim_{i}" for i in range(len(shape))]
                    for name, shape in zip(self.names, self.var_shapes, strict=True)}
            coords = self.coords
            dim_sizes = {dim: len(values) for dim, values in coords.items()}
            variables = _lib.PyVariable.new_variables(
                self.names, ["float64"] * len(self.names), [list(s) for s in self.var_shapes],
                dim_sizes, dims,
            )
            return _lib.PyMcModel(logp, expand, variables, self.n_dim, dim_sizes, coords,
                                  self.initial_point, _no_transform_adapter)

        def _make_sampler(self, settings: Any, init_mean: Any, cores: int, progress_type: Any,
                          extra_callback: Any, extra_callback_rate: Any, store: Any) -> Any:
            return _lib.PySampler.from_pymc(settings, cores, self._make_model(init_mean),
                                            progress_type, extra_callback, extra_callback_rate,
                                            store)

    return KernelModel


def kernel_model(density: Any, initial_point: Callable[[Any], np.ndarray]) -> Any:
    """A nutpie model running the kernel of ``density`` without Python in the loop.

    Compiles the C callbacks on first use (cached on disk by Numba).

    Parameters
    ----------
    density : MixtureDensity
        Layout and kernel arguments.
    initial_point : callable
        ``seed -> ndarray of shape (n_dim,)``, a chain's starting point.

    Returns
    -------
    KernelModel

    Raises
    ------
    RuntimeError
        When :func:`interface_problem` finds the installed nutpie incompatible.
    """
    problem = interface_problem()
    if problem is not None:
        raise RuntimeError(problem)
    _compiled_callbacks()
    buffer = pack_arguments(density.kernel_args, density.n_dim)
    buffer.flags.writeable = False
    return _kernel_model_class()(dims={}, names=list(density.names),
                       var_shapes=[tuple(s) for s in density.shapes],
                       buffer=buffer, initial_point=initial_point)
