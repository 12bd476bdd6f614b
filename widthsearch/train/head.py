"""Head policies: how verification initializes the classifier it trains from scratch.

timm initializes EfficientNet, MobileNet and their kin the TensorFlow way
(``timm.models._efficientnet_builder._init_weight_goog``): the classifier's weights are drawn
uniform in ±1/sqrt(classes). That range suits 1,000 ImageNet classes; with 10 classes it is
ten times wider, so a fresh mobilenetv2_100 for CIFAR-10 starts with logits of standard
deviation about 4 and a cross-entropy of 5 to 7 where chance is ln 10 = 2.3. A short
verification run spends its first epochs undoing that, and such a base ends near chance
(``studies/head_init.py`` has the figures). ResNets are not affected: timm leaves their
classifier at PyTorch's default, whose range follows the 512 or 2,048 inputs.

Policies (``--head``):

- ``zero``: the weights and bias of the layer that outputs the logits start at zero, so every
  model starts at the uniform prediction (loss ln classes) whatever its family and the number
  of classes; the features get gradients from the second step on, once that layer has moved.
- ``timm``: the classifier as timm initializes it.
- ``auto`` (the default): ``zero`` where the untrained base model starts far from chance (its
  expected cross-entropy :func:`start_loss` above :data:`FAR_FROM_CHANCE` times ln classes),
  else ``timm``. Zeroing is not free where timm's init is sound: a ResNet-18 trained 3 epochs
  on 5,000 CIFAR-10 images loses about 2 points with it, while a MobileNetV2 gains about 8
  (``studies/head_init.py``). ``auto`` is resolved once per verification, from the base
  model, and the recipe stores the policy it resolved to.

Like the stem policy, a head policy applies to every model of a verification alike and is part
of the recipe that identifies a result. Params, MACs and latency do not depend on it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from widthsearch.errors import HeadError
from widthsearch.train.output import logits as output_logits

if TYPE_CHECKING:
    from collections.abc import Sequence

    from torch import nn

POLICIES = ("auto", "zero", "timm")
DEFAULT_POLICY = "auto"
"""What ``verify`` and ``[verify]`` use unless told otherwise (the decision and its figures:
``studies/head_init.py`` and the README)."""
FAR_FROM_CHANCE = 1.5
"""``auto`` zeroes the head when the untrained base's expected cross-entropy is above this
times ln classes. With timm's init at 10 classes and 32x32: ResNet-18/50, RegNetX, ConvNeXt,
DenseNet, GhostNet, RepViT 1.00-1.05x, ConvFormer 1.15x; MobileNetV2 2.95x, MobileNetV3 1.87x,
EfficientNet-B0 2.55x (1.38x with the CIFAR stem), MixNet-S 3.63x. At 1,000 classes every one
of them is at 1.00-1.06x."""


def check_policy(policy: str) -> str:
    if policy not in POLICIES:
        raise HeadError(f"unknown head policy '{policy}'; use {', '.join(POLICIES)}")
    return policy


def logit_layers(model: nn.Module) -> list[nn.Linear | nn.Conv2d]:
    """The layers that output class logits: the linear and conv layers in timm's
    ``get_classifier()`` with ``num_classes`` outputs (one for most models; the last layer of an
    MLP head such as MetaFormer's; the classifier and distillation layers of RepViT).

    Raises:
        HeadError: the model has no such layer (no classes, or no timm classifier).
    """
    from torch import nn

    get = getattr(model, "get_classifier", None)
    head = get() if callable(get) else None
    classes = getattr(model, "num_classes", None)
    found = [
        m
        for m in (head.modules() if isinstance(head, nn.Module) else ())
        if isinstance(m, (nn.Linear, nn.Conv2d))
        and (m.out_features if isinstance(m, nn.Linear) else m.out_channels) == classes
    ]
    if not found:
        raise HeadError(
            f"{type(model).__name__} has no layer with {classes} outputs in its classifier "
            "(timm's get_classifier()), so --head zero cannot apply to it; use --head timm"
        )
    return found


def start_loss(
    model: nn.Module, input_size: Sequence[int], batch: int = 32, output: str | None = None
) -> float:
    """The untrained ``model``'s cross-entropy averaged over every possible label: what its
    first training step sees, ln classes when it predicts uniformly. The logits are the part
    of the output that ``output`` names (:mod:`widthsearch.train.output`).

    Measured in training mode (batch norms use the batch's statistics, as the first step does)
    on a batch of unit normal noise at ``input_size`` (normalized images have that scale) from
    its own seeded generator, so it needs no data and leaves the global RNG alone. The
    buffers the forward pass updates (batch-norm running statistics) are restored afterwards.
    """
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *input_size, generator=gen)
    buffers = [(b, b.clone()) for b in model.buffers()]
    was_training = model.training
    model.train()
    try:
        with torch.no_grad():
            logits = output_logits(model(x), output).float()
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        model.train(was_training)
    return float((logits.logsumexp(1) - logits.mean(1)).mean())


def resolve_policy(
    policy: str, model: nn.Module, input_size: Sequence[int], output: str | None = None
) -> tuple[str, str | None]:
    """``policy`` with ``auto`` decided from the base ``model`` (built as trained: ``timm``
    for a model without a logit layer), and a note saying why when ``auto`` zeroes the head;
    ``output`` names the logits in the model's output (:mod:`widthsearch.train.output`)."""
    check_policy(policy)
    if policy != "auto":
        return policy, None
    try:
        classes = len(logit_layers(model)[0].weight)
    except HeadError:
        return "timm", None  # nothing to zero
    chance = math.log(classes)
    loss = start_loss(model, input_size, output=output)
    if loss <= FAR_FROM_CHANCE * chance:
        return "timm", None
    return "zero", (
        f"head: zero (--head auto): the untrained base starts at cross-entropy {loss:.2f}, "
        f"{loss / chance:.1f}x chance (ln {classes} = {chance:.2f}), so the logit layer of every "
        "model of this verification starts at zero (--head timm keeps timm's init)"
    )


def apply_head(model: nn.Module, policy: str) -> nn.Module:
    """``model`` with the head ``policy`` applied in place (see the module docstring).

    Raises:
        HeadError: ``auto`` (resolve it first, with :func:`resolve_policy`), or ``zero`` on a
            model without a logit layer.
    """
    import torch

    check_policy(policy)
    if policy == "timm":
        return model
    if policy == "auto":
        raise HeadError("--head auto is decided from the base model: resolve_policy() first")
    with torch.no_grad():
        for layer in logit_layers(model):
            layer.weight.zero_()
            if layer.bias is not None:
                layer.bias.zero_()
    return model


__all__ = [
    "DEFAULT_POLICY",
    "FAR_FROM_CHANCE",
    "POLICIES",
    "HeadError",
    "apply_head",
    "check_policy",
    "logit_layers",
    "resolve_policy",
    "start_loss",
]
