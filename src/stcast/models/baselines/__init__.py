"""Classical and deep baselines, all run through the same engine."""

from stcast.models.baselines import brits, dlinear, gwnet, lstm, naive, stid  # noqa: F401
