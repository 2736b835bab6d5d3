"""Pipelines the package runs end to end: `default_model` builds the shipped default bundle (stages,
route, calibration, export, model card)."""
