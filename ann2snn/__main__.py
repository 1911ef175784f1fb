"""``python -m ann2snn`` (and ``torchrun ... -m ann2snn``) runs the command line."""

from ann2snn.cli.main import run

run()
