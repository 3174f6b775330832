"""Validation of bayesgmm's Bayesian inference (not exported by :mod:`bayesgmm`).

- :mod:`bayesgmm.validation.ranks`: SBC ranks and their uniformity tests
  (chi-square, ECDF difference with a simultaneous band).
- :mod:`bayesgmm.validation.sbc`: the simulation-based calibration study of
  :class:`~bayesgmm.BayesGMM` (:func:`run_sbc`, :class:`SBCResult`, the test
  quantities and the ECDF plot).

The prior draws and the mixture simulation the study uses belong to the
model's specification, :func:`bayesgmm.bayes.spec.sample_prior` and
:func:`bayesgmm.bayes.spec.simulate_mixture`.  ``scripts/sbc.py`` runs the
published study.
"""

from bayesgmm.validation.ranks import (
    chi_square_uniformity,
    ecdf_band_test,
    ecdf_difference,
    rank_statistic,
    simultaneous_band,
    thin_draws,
)
from bayesgmm.validation.sbc import (
    SBCResult,
    label_invariant_quantities,
    plot_ecdf_difference,
    run_sbc,
)

__all__ = [
    "SBCResult",
    "chi_square_uniformity",
    "ecdf_band_test",
    "ecdf_difference",
    "label_invariant_quantities",
    "plot_ecdf_difference",
    "rank_statistic",
    "run_sbc",
    "simultaneous_band",
    "thin_draws",
]
