"""stcast: spatio-temporal forecasting and imputation on one data layer, protocol and engine."""

from stcast.errors import StcastError

__version__ = "0.1.0"
__all__ = ["StcastError", "__version__"]
