"""Weight initialisation shared by the models (as in QCFS's code)."""

from torch import nn


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out, ReLU gain) convolutions, BN weight 1 and bias 0, Linear bias 0."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)
