"""Names shared by every layer: dimensions and covariance types."""

CHAIN = "chain"
DRAW = "draw"
OBS = "obs"
COMPONENT = "component"
FEATURE = "feature"
FEATURE_BIS = "feature_bis"

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
#: The 14 parsimonious models of R's mclust (Celeux and Govaert 1995), in mclust's order;
#: ``bayesgmm.parsimonious`` has their M-steps.  EMGMM accepts these beside the four above.
MCLUST_MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "VEE", "EVE", "VVE", "EEV",
                 "VEV", "EVV", "VVV")
#: The mclust model that each of scikit-learn's covariance types is (BayesGMM's aliases).
SKLEARN_EQUIVALENTS = {"spherical": "VII", "diag": "VVI", "tied": "EEE", "full": "VVV"}
#: What EMGMM's ``missing`` may say NaN entries are: missing at random, or an error.
MISSING_OPTIONS = ("marginalize", "error")

#: Version of the on-disk layout written by ``GMMResult.to_netcdf``. Version 1 (before
#: the SHA-256 digests) had no ``sha256`` attribute and copied the posterior draws of the
#: weights, means and covariances into ``/bayesgmm``; it is still read, with a warning.
FILE_FORMAT_VERSION = 2
