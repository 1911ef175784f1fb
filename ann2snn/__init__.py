"""ann2snn: convert quantization-clip ANNs into spiking networks with (multi-bit) IF neurons."""

__version__ = "0.1.0"
