"""The two Channel-Bench-Macro networks (CIFAR-10, 32x32), written from their description.

A user-style model file: ``resnet`` and ``mobilenet`` return an ``nn.Module`` and can be given
to widthsearch as ``benchmarks/channel_bench_macro.py:resnet`` (with ``--model-kwargs`` such as
``'{"code": "2222222"}'``). The definitions follow the description in
``/work/shared/data/README.md`` (Su et al.'s Channel-Bench-Macro): 7 width positions, each 1/4 to
4/4 of its base width; every conv is bias-free and followed by BatchNorm; the classifier is a
linear layer with bias. No code of the benchmark's repository is used.

Position ``i`` of a 7-digit code ``"d0...d6"`` (digits 1..4) has width ``round(d_i * base_i / 4)``;
:data:`RESNET_BASE` and :data:`MOBILENET_BASE` are the bases (code ``"4444444"``). The width
space widthsearch parses from these networks has the 7 positions as its free groups, in order.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

RESNET_BASE = (256, 256, 256, 512, 512, 512, 512)
MOBILENET_BASE = (128, 768, 768, 768, 256, 1536, 1024)
LEVELS = 4
"""Widths per position: ``round(k * base / 4)`` for k in 1..4."""


def code_widths(code: str, base: Sequence[int]) -> tuple[int, ...]:
    """The widths of a 7-digit code such as ``"4432214"`` over ``base``.

    Raises:
        ValueError: not one digit in 1..4 per position.
    """
    if len(code) != len(base) or any(c not in "1234" for c in code):
        raise ValueError(f"code must be {len(base)} digits in 1..4, not {code!r}")
    return tuple(round(int(c) * b / LEVELS) for c, b in zip(code, base, strict=True))


def _widths(widths: Sequence[int] | None, code: str | None, base: Sequence[int]) -> list[int]:
    if widths is not None and code is not None:
        raise ValueError("give widths or code, not both")
    if code is not None:
        return list(code_widths(code, base))
    if widths is None:
        return list(base)
    if len(widths) != len(base) or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths must be {len(base)} positive integers, not {list(widths)}")
    return [int(w) for w in widths]


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(cin, cout, k, stride, padding=k // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


class _Basic(nn.Module):
    """3x3 (cin -> mid), ReLU, 3x3 (mid -> cout); added to the input when ``residual``; ReLU."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(cin, mid, 3, stride)
        self.conv2, self.bn2 = _conv_bn(mid, cout, 3)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(x + y if self.residual else y)


class _InvertedResidual(nn.Module):
    """1x1 expand, ReLU, 3x3 depthwise, ReLU, 1x1 project; added to the input when
    ``residual``; no activation after the sum."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, residual: bool) -> None:
        super().__init__()
        self.expand, self.bn1 = _conv_bn(cin, mid, 1)
        self.dw, self.bn2 = _conv_bn(mid, mid, 3, stride, groups=mid)
        self.project, self.bn3 = _conv_bn(mid, cout, 1)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, x: Tensor) -> Tensor:
        y = self.relu(self.bn1(self.expand(x)))
        y = self.bn3(self.project(self.relu(self.bn2(self.dw(y)))))
        return x + y if self.residual else y


class _Net(nn.Module):
    def __init__(self, stem: int, blocks: list[nn.Module], head: list[nn.Module], feat: int,
                 num_classes: int) -> None:  # fmt: skip
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn(3, stem, 3, 2), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(*head)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(feat, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.blocks(self.stem(x)))
        return self.fc(self.pool(x).flatten(1))


def resnet(
    widths: Sequence[int] | None = None, *, code: str | None = None, num_classes: int = 10
) -> nn.Module:
    """Channel-Bench-Macro's ResNet at ``widths`` (7 ints) or ``code`` (default: base widths).

    Stem 3x3 stride 2 (3 -> w0); two residual basic blocks on the w0 stream (inner widths w1,
    w2); a stride-2 block without shortcut (w0 -> w3 -> w4); two residual blocks on the w4
    stream (w5, w6); global average pool; linear (w4 -> classes).
    """
    w = _widths(widths, code, RESNET_BASE)
    blocks: list[nn.Module] = [
        _Basic(w[0], w[1], w[0], 1, True),
        _Basic(w[0], w[2], w[0], 1, True),
        _Basic(w[0], w[3], w[4], 2, False),
        _Basic(w[4], w[5], w[4], 1, True),
        _Basic(w[4], w[6], w[4], 1, True),
    ]
    return _Net(w[0], blocks, [], w[4], num_classes)


def mobilenet(
    widths: Sequence[int] | None = None, *, code: str | None = None, num_classes: int = 10
) -> nn.Module:
    """Channel-Bench-Macro's MobileNet at ``widths`` (7 ints) or ``code`` (default: base).

    Stem 3x3 stride 2 (3 -> w0); inverted residuals w0 -> w1 -> w0 and w0 -> w2 -> w0 (added),
    w0 -> w3 -> w4 (depthwise stride 2, no shortcut), w4 -> w5 -> w4 (added); 1x1 conv
    (w4 -> w6) with ReLU; global average pool; linear (w6 -> classes).
    """
    w = _widths(widths, code, MOBILENET_BASE)
    blocks: list[nn.Module] = [
        _InvertedResidual(w[0], w[1], w[0], 1, True),
        _InvertedResidual(w[0], w[2], w[0], 1, True),
        _InvertedResidual(w[0], w[3], w[4], 2, False),
        _InvertedResidual(w[4], w[5], w[4], 1, True),
    ]
    head = [*_conv_bn(w[4], w[6], 1), nn.ReLU(inplace=True)]
    return _Net(w[0], blocks, head, w[6], num_classes)


NETWORKS = {"ResNet": (resnet, RESNET_BASE), "MobileNet": (mobilenet, MOBILENET_BASE)}
"""Table name (``Results_<name>.json``) -> (factory, base widths)."""
