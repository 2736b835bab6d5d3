"""Experiment files, their runner (`python -m benchmarks.run`) and the measurement scripts; not shipped."""
