"""Bayesian Gaussian mixtures in PyMC: the model, inference, relabeling and the estimator.

Importing this package imports PyMC.  The NumPy-only pieces
(:mod:`bayesgmm.bayes.relabel`, :mod:`bayesgmm.bayes.params`) can be imported
on their own.
"""

from bayesgmm.bayes.estimator import BayesGMM
from bayesgmm.bayes.model import PRIOR_KEYS, build_gmm_model

__all__ = ["PRIOR_KEYS", "BayesGMM", "build_gmm_model"]
