"""Models: the contract (base.py), the name table (registry.py), one file per method, baselines/."""

from stcast.models.base import Prediction, ProblemSpec, STModel
from stcast.models.registry import build_model, get_model_class, model_names

__all__ = ["Prediction", "ProblemSpec", "STModel", "build_model", "get_model_class", "model_names"]
