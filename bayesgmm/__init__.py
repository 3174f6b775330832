"""bayesgmm: uncertainty-aware clustering with Gaussian mixture models.

Fit a mixture by EM (:class:`EMGMM`) or as a Bayesian model in PyMC
(:class:`BayesGMM`); both return a :class:`GMMResult`.
"""

from bayesgmm import datasets
from bayesgmm.compare import Comparison, MethodComparison, compare
from bayesgmm.estimators import EMGMM
from bayesgmm.exceptions import (
    ConvergenceWarning,
    DataWarning,
    DiagnosticsWarning,
    DifferentModelError,
    SamplerFallbackWarning,
    UnverifiedFileWarning,
)
from bayesgmm.reporting import report
from bayesgmm.results import GMMResult, load
from bayesgmm.selection import compare_k

__version__ = "0.1.0"

__all__ = [
    "EMGMM",
    "BayesGMM",
    "Comparison",
    "ConvergenceWarning",
    "DataWarning",
    "DiagnosticsWarning",
    "DifferentModelError",
    "GMMResult",
    "MethodComparison",
    "SamplerFallbackWarning",
    "UnverifiedFileWarning",
    "__version__",
    "compare",
    "compare_k",
    "datasets",
    "load",
    "report",
]


def __getattr__(name: str):
    # The Bayesian estimator imports PyMC, which is slow: load it on first use.
    if name == "BayesGMM":
        from bayesgmm.bayes import BayesGMM

        return BayesGMM
    raise AttributeError(f"module 'bayesgmm' has no attribute {name!r}")
