"""stcast: spatio-temporal forecasting and imputation on one data layer, protocol and engine."""

from stcast.errors import StcastError

__version__ = "0.1.0"
__all__ = ["Forecaster", "Imputer", "StcastError", "__version__"]


def __getattr__(name: str):
    """`from stcast import Forecaster` without importing torch for `import stcast` alone."""
    if name in ("Forecaster", "Imputer"):
        from stcast import api

        return getattr(api, name)
    raise AttributeError(f"module 'stcast' has no attribute {name!r}")
