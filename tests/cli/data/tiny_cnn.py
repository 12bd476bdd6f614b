"""A user's own small CNN, for the tests of model references (``tiny_cnn.py:TinyCNN``).

Not a test module: the tests copy it into a temporary folder and point widthsearch at it.
"""

from __future__ import annotations

from torch import nn


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv_bn(width, width), nn.Conv2d(width, width, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)


class TinyCNN(nn.Module):
    """A stem, one strided conv per further width, a residual block, a linear head."""

    def __init__(self, widths=(8, 16, 16), num_classes: int = 10, in_chans: int = 3) -> None:
        super().__init__()
        layers = [conv_bn(in_chans, widths[0])]
        for a, b in zip(widths, widths[1:], strict=False):
            layers.append(conv_bn(a, b, stride=2))
        layers.append(Residual(widths[-1]))
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        return self.fc(self.features(x).mean((2, 3)))


def make_tiny(**kwargs) -> TinyCNN:
    """A factory function rather than a class."""
    return TinyCNN(**kwargs)


def not_a_model(**kwargs):
    return {"widths": kwargs}


def broken(**kwargs):
    raise RuntimeError("this factory always fails")
