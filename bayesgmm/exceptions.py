"""Warning and error classes raised by bayesgmm."""

from sklearn.exceptions import ConvergenceWarning as _SklearnConvergenceWarning
from sklearn.exceptions import NotFittedError

__all__ = [
    "ConvergenceWarning",
    "DataWarning",
    "DiagnosticsWarning",
    "DifferentModelError",
    "NotFittedError",
    "SamplerFallbackWarning",
    "UnverifiedFileWarning",
]


class ConvergenceWarning(_SklearnConvergenceWarning):
    """A fit stopped before it converged (EM iterations or ADVI).

    Subclasses scikit-learn's ``ConvergenceWarning`` so that filters written
    for scikit-learn also catch it.
    """


class DataWarning(UserWarning):
    """The data make a setting misbehave (e.g. ``reg_covar`` larger than a column's spread)."""


class DiagnosticsWarning(UserWarning):
    """Posterior diagnostics (R-hat, ESS, divergences, Pareto k) look poor."""


class DifferentModelError(ValueError):
    """A saved file does not describe the model it is being loaded as."""


class SamplerFallbackWarning(UserWarning):
    """The fast sampling route failed or is unavailable; a slower, correct route ran instead."""


class UnverifiedFileWarning(UserWarning):
    """A saved result was loaded without checking its SHA-256 digest.

    Files written by bayesgmm before the digest was stored (file format 1)
    cannot be checked for changes; saving the result again adds the digest.
    """
