from stcast.config import TrainConfig
from stcast.engine.experiment import Experiment, ExperimentResult
from stcast.engine.splits import prepare_windows
from stcast.engine.trainer import Trainer

__all__ = ["Experiment", "ExperimentResult", "TrainConfig", "Trainer", "prepare_windows"]
