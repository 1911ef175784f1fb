"""Conversion and simulation: neurons (IF / MBIF), the operation check, ReLU sites and threshold
calibration, conversion, SNN checkpoints, time-step simulation and T sweeps."""
