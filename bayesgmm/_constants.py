"""Names shared by every layer: dimensions and covariance types."""

CHAIN = "chain"
DRAW = "draw"
OBS = "obs"
COMPONENT = "component"
FEATURE = "feature"
FEATURE_BIS = "feature_bis"

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

#: Version of the on-disk layout written by ``GMMResult.to_netcdf``.
FILE_FORMAT_VERSION = 1
