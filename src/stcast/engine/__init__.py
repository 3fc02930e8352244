from stcast.engine.experiment import Experiment, ExperimentResult, prepare_windows
from stcast.engine.trainer import TrainConfig, Trainer

__all__ = ["Experiment", "ExperimentResult", "TrainConfig", "Trainer", "prepare_windows"]
