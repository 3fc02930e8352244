"""The task, parsed once where input enters (CLI, API, config) and passed down as a type."""

from __future__ import annotations

from enum import StrEnum

from stcast.errors import StcastError


class Task(StrEnum):
    """What a model is trained for. A str enum: `Task.FORECAST == "forecast"`, so configs and files keep strings."""

    FORECAST = "forecast"
    IMPUTE = "impute"
    MULTITASK = "multitask"  # U-STS-LLM eq. 15: forecast + impute hidden inputs, one weighted loss

    def __repr__(self) -> str:  # messages quote the name the user wrote: 'forecast'
        return repr(self.value)

    @classmethod
    def parse(cls, value) -> Task:
        try:
            return cls(value)
        except ValueError:
            raise StcastError(f"unknown task {value!r}; use one of {', '.join(t.value for t in cls)}") from None

    @property
    def scored(self) -> Task:
        """What metrics and windows score: the hidden entries for imputation, the future otherwise."""
        return Task.IMPUTE if self is Task.IMPUTE else Task.FORECAST

    @property
    def hides_inputs(self) -> bool:
        """Whether training windows hide input entries (a missingness pattern)."""
        return self is not Task.FORECAST
