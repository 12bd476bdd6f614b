"""Small CNNs whose training differs from their eval forward, or whose outputs are not one
tensor, for the tests of issue 33 (``tests/space/test_train_mode.py``,
``tests/cli/test_outputs.py``).

Not a test module: the tests point widthsearch at it as a model file
(``tests/data/train_mode_nets.py:AuxNet``).
"""

from __future__ import annotations

import collections

import torch
import torch.nn.functional as F
from torch import nn

AuxOutputs = collections.namedtuple("AuxOutputs", ["logits", "aux_logits"])


def conv_bn(c_in: int, c_out: int, stride: int = 1, k: int = 3) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class AuxHead(nn.Module):
    """GoogLeNet's auxiliary classifier in small: pool to 2x2, a 1x1 conv, two linear layers."""

    def __init__(self, c_in: int, num_classes: int, width: int = 8, hidden: int = 16) -> None:
        super().__init__()
        self.conv = conv_bn(c_in, width, k=1)
        self.fc1 = nn.Linear(width * 4, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = torch.flatten(self.conv(F.adaptive_avg_pool2d(x, (2, 2))), 1)
        return self.fc2(F.dropout(F.relu(self.fc1(x)), 0.5, training=self.training))


class AuxNet(nn.Module):
    """A stem, two stages and a linear head; in training also an auxiliary head on the first
    stage, whose logits come out next to the main ones in a named tuple (as GoogLeNet's)."""

    def __init__(self, num_classes: int = 10, widths=(8, 16, 24)) -> None:
        super().__init__()
        self.stem = conv_bn(3, widths[0])
        self.stage1 = conv_bn(widths[0], widths[1], stride=2)
        self.stage2 = conv_bn(widths[1], widths[2], stride=2)
        self.aux = AuxHead(widths[1], num_classes)
        self.fc = nn.Linear(widths[2], num_classes)

    def forward(self, x):
        x = self.stage1(self.stem(x))
        aux = self.aux(x) if self.training else None
        logits = self.fc(self.stage2(x).mean((2, 3)))
        return AuxOutputs(logits, aux) if self.training else logits


class DropPathNet(nn.Module):
    """Residual blocks with stochastic depth: in training each block's branch is dropped per
    sample (a random [batch, 1, 1, 1] mask), in eval it always runs."""

    def __init__(self, num_classes: int = 10, width: int = 16, drop: float = 0.5) -> None:
        super().__init__()
        self.stem = conv_bn(3, width)
        self.blocks = nn.ModuleList(
            nn.Sequential(conv_bn(width, width), nn.Conv2d(width, width, 3, padding=1))
            for _ in range(2)
        )
        self.drop = drop
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        for block in self.blocks:
            y = block(x)
            if self.training:
                keep = torch.rand(x.shape[0], 1, 1, 1, device=x.device) >= self.drop
                y = y * keep / (1 - self.drop)
            x = x + y
        return self.fc(x.mean((2, 3)))


class TiedInTraining(nn.Module):
    """Two convs whose outputs are concatenated; in training the forward also computes a
    consistency term between them (kept on the module for the loss), so training ties their
    widths where the eval forward alone would let them differ."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.a = conv_bn(8, 16)
        self.b = conv_bn(8, 16)
        self.fc = nn.Linear(32, num_classes)
        self.consistency = None

    def forward(self, x):
        x = self.stem(x)
        a, b = self.a(x), self.b(x)
        if self.training:
            self.consistency = (a - b).square().mean()
        return self.fc(torch.cat([a, b], 1).mean((2, 3)))


class DictNet(nn.Module):
    """A classifier that returns a dict: its logits and an embedding (whose width the outside
    world sees, so it is kept)."""

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            conv_bn(3, width // 2), conv_bn(width // 2, width, 2), conv_bn(width, width)
        )
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x):
        embedding = self.features(x).mean((2, 3))
        return {"embedding": embedding, "logits": self.fc(embedding)}


class SegNet(nn.Module):
    """A segmentation-style model: a dict whose ``out`` is a map of class scores per pixel
    (what training cannot read) next to ``cls``, image-level logits (what it can)."""

    def __init__(self, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.features = conv_bn(3, width)
        self.seg = nn.Conv2d(width, num_classes, 1)
        self.cls = nn.Linear(width, num_classes)

    def forward(self, x):
        f = self.features(x)
        return {"out": self.seg(f), "cls": self.cls(f.mean((2, 3)))}


class BigAuxKernel(nn.Module):
    """An auxiliary head whose 5x5 conv fails on the small maps of a small input, in training
    only."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8, stride=4)
        self.aux_conv = nn.Conv2d(8, 8, 5)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.stem(x)
        if self.training:
            _ = self.aux_conv(x)
        return self.fc(x.mean((2, 3)))


class TwoInputs(nn.Module):
    """A forward that needs a mask next to the image."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = conv_bn(3, 8)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x, mask):
        return self.fc((self.stem(x) * mask).mean((2, 3)))


def downloading(num_classes: int = 10, pretrained_backbone: bool = True) -> nn.Module:
    """A factory that loads a pretrained backbone by default, from a URL that refuses the
    connection (as any download does without a network)."""
    model = AuxNet(num_classes)
    if pretrained_backbone:
        state = torch.hub.load_state_dict_from_url("http://127.0.0.1:9/backbone.pth")
        model.load_state_dict(state)
    return model
