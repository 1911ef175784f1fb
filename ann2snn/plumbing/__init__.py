"""Plumbing shared by every stage: datasets, checkpoints and atomic writes, output folders, devices,
distributed training and the user-error type."""
