"""The direct-training companion: multi-bit LIF (MBLIF) neurons, ECA interlaminar connections,
surrogate-gradient training, the ablation and the DVS-Gesture reader."""
