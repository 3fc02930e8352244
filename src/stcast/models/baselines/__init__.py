"""Classical and deep baselines, all run through the same engine (names in models/registry.py)."""
