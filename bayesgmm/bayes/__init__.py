"""Bayesian Gaussian mixtures in PyMC: the model, inference, relabeling and the estimator.

The NumPy-only modules (:mod:`bayesgmm.bayes.relabel`, :mod:`bayesgmm.bayes.params`)
import without PyMC; :class:`BayesGMM`, :func:`build_gmm_model` and
:data:`PRIOR_KEYS` load PyMC on first access.
"""

from typing import Any

__all__ = ["PRIOR_KEYS", "BayesGMM", "build_gmm_model"]


def __getattr__(name: str) -> Any:
    if name == "BayesGMM":
        from bayesgmm.bayes.estimator import BayesGMM

        return BayesGMM
    if name in ("build_gmm_model", "PRIOR_KEYS"):
        from bayesgmm.bayes import model

        return getattr(model, name)
    raise AttributeError(f"module 'bayesgmm.bayes' has no attribute {name!r}")
