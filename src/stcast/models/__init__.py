from stcast.models.base import Prediction, ProblemSpec, STModel, build_model, model_names, register_model

__all__ = ["Prediction", "ProblemSpec", "STModel", "build_model", "model_names", "register_model"]
