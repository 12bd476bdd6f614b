"""SynExp: the expected SynFlow score of a network under random masks of given layer densities.

SynFlow (Tanaka et al., 2020) scores a weight by ``|θ · ∂R/∂θ|``, where ``R`` is the sum of the
network's output on an all-ones input with every parameter replaced by its absolute value. For
a network whose ``R`` is multilinear in each layer's weights (a plain conv chain), masking each
weight of layer ``l`` independently with probability ``p_l`` gives ``E[R] = Π_l p_l · R`` —
whatever the granularity of the masks (Cai et al., arXiv 2203.02549). So the log of that
expectation, up to a constant, is ``Σ_l log p_l``, and choosing widths to maximize it is a
geometric program (:mod:`widthsearch.solve`).

With channel widths, the density of a layer is the fraction of its weights that remain (or,
above base, the factor by which they grow): ``x_in · x_out`` for dense, grouped and linear
layers, ``x`` for depthwise convs. Norm layers and loose scales are not weights SynFlow prunes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING

from widthsearch.space.groups import WEIGHT_KINDS

if TYPE_CHECKING:
    import torch
    from torch import nn

    from widthsearch.space.width_space import Layer, WidthSpace


def _ratio(widths: Sequence[float], base: Sequence[int], groups: Sequence[int]) -> float:
    return sum(widths[g] for g in groups) / sum(base[g] for g in groups)


def layer_density(layer: Layer, widths: Sequence[float], base: Sequence[int]) -> float:
    """Kept (or grown) fraction of ``layer``'s weights at ``widths`` relative to ``base``.

    Widths may be real numbers (multipliers times base), so this also scores continuous
    solutions. Concatenated inputs count their channels together (DenseNet).
    """
    out = _ratio(widths, base, layer.out_groups)
    if layer.kind == "depthwise":
        return out
    return _ratio(widths, base, layer.in_groups) * out


def densities(space: WidthSpace, widths: Sequence[float] | None = None) -> dict[str, float]:
    """Layer name -> density for every weight layer of ``space``."""
    base = space.base_widths
    widths = base if widths is None else widths
    return {
        lay.name: layer_density(lay, widths, base)
        for lay in space.layers
        if lay.kind in WEIGHT_KINDS
    }


def log_synexp(space: WidthSpace, widths: Sequence[float] | None = None) -> float:
    """``Σ_l log p_l``: the log SynExp of ``widths`` relative to the base model (0 at base)."""
    return sum(math.log(p) for p in densities(space, widths).values())


def log_synexp_of_densities(values: Mapping[str, float]) -> float:
    """``Σ_l log p_l`` for given layer densities; ``-inf`` when a layer is pruned away."""
    return sum(math.log(p) if p > 0 else -math.inf for p in values.values())


# --------------------------------------------------------------------------- SynFlow
def linearized(model: nn.Module) -> nn.Module:
    """A float64, eval-mode copy of ``model`` with every parameter and buffer made non-negative.

    This is SynFlow's linearization: with positive weights ReLU-family activations pass
    everything, so ``R`` counts paths weighted by ``|θ|``. Norm weights that are all zero
    (timm's zero-initialized last BN of a residual block) are set to one: SynFlow would
    otherwise see no path through the branch and score all its weights zero.
    """
    import copy

    import torch

    net = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        for t in net.state_dict().values():
            if t.is_floating_point():
                t.abs_()
        for m in net.modules():  # zero-initialized residual gammas would hide whole branches
            w = getattr(m, "weight", None)
            is_norm = isinstance(
                m, (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm, torch.nn.LayerNorm)
            )
            if is_norm and w is not None and not bool(w.any()):
                w.fill_(1.0)
    return net


def synflow_R(net: nn.Module, input_size: Sequence[int]) -> torch.Tensor:
    """``R = 1ᵀ f(1)``: the summed output of a linearized net on an all-ones input."""
    import torch

    with _Float64Depthwise():
        return net(torch.ones(1, *input_size, dtype=torch.float64)).sum()


def _depthwise_unfold(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """A depthwise conv as unfold + multiply-sum: same values, far faster in float64 on CPU."""
    import torch
    import torch.nn.functional as F

    n, c, h, w = x.shape
    kh, kw = weight.shape[2:]
    pair = lambda v: (v, v) if isinstance(v, int) else tuple(v)  # noqa: E731
    (sh, sw), (dh, dw), (ph, pw) = pair(stride), pair(dilation), pair(padding)
    cols = F.unfold(x, (kh, kw), dilation=(dh, dw), padding=(ph, pw), stride=(sh, sw))
    out = torch.einsum("nckl,ck->ncl", cols.view(n, c, kh * kw, -1), weight.view(c, kh * kw))
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = out.view(n, c, oh, ow)
    return out if bias is None else out + bias.view(1, c, 1, 1)


class _Float64Depthwise:
    """Routes float64 depthwise ``F.conv2d`` calls to :func:`_depthwise_unfold`.

    PyTorch has no fast float64 depthwise kernel on CPU and loops over channels (EfficientNet-B0:
    9,000 small convs per pass); SynFlow needs float64, so this makes its 100 passes affordable.
    """

    def __enter__(self):
        import torch
        from torch.overrides import TorchFunctionMode

        class Mode(TorchFunctionMode):
            def __torch_function__(self, func, types, args=(), kwargs=None):
                kwargs = kwargs or {}
                if func is torch.nn.functional.conv2d or func is torch.conv2d:
                    x, weight = args[0], args[1]
                    groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
                    padding = args[4] if len(args) > 4 else kwargs.get("padding", 0)
                    if (
                        x.dtype == torch.float64
                        and groups > 1
                        and groups == x.shape[1]
                        and weight.shape[0] == groups
                        and not isinstance(padding, str)
                    ):
                        return _depthwise_unfold(*args, **kwargs)
                return func(*args, **kwargs)

        self._mode = Mode()
        return self._mode.__enter__()

    def __exit__(self, *exc):
        return self._mode.__exit__(*exc)


def synflow_scores(
    net: nn.Module, input_size: Sequence[int], weights: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """SynFlow scores ``|θ · ∂R/∂θ|`` of the named weights of a linearized net."""
    net.zero_grad(set_to_none=True)
    synflow_R(net, input_size).backward()
    scores = {}
    for n, w in weights.items():
        assert w.grad is not None  # backward() fills it: the weights require grad
        scores[n] = (w.grad * w).detach().abs()
    return scores


def synflow_prune(
    model: nn.Module,
    input_size: Sequence[int],
    weight_names: Sequence[str],
    density: float,
    *,
    rounds: int = 100,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Iterative SynFlow pruning to a global ``density`` of the named weights.

    Each of ``rounds`` rounds rescores the masked, linearized network and keeps the top
    ``density ** (k / rounds)`` of all weights (the exponential schedule of the SynFlow paper).
    Returns one boolean mask per weight name.
    """
    import torch

    if not 0 < density <= 1:
        raise ValueError(f"SynFlow density must be in (0, 1], got {density}")
    net = linearized(model)
    params = dict(net.named_parameters())
    for p in params.values():
        p.requires_grad_(False)
    weights = {n: params[n] for n in weight_names}
    originals = {n: w.detach().clone() for n, w in weights.items()}
    masks = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}
    total = sum(w.numel() for w in weights.values())
    for w in weights.values():
        w.requires_grad_(True)
    for k in range(1, rounds + 1):
        with torch.no_grad():
            for n, w in weights.items():
                w.copy_(originals[n] * masks[n])
        scores = synflow_scores(net, input_size, weights)
        keep = max(1, int(round(total * density ** (k / rounds))))
        # pruned weights score -1 so they never come back; the last round keeps exactly `keep`
        flat = torch.cat([torch.where(masks[n], s, -1.0).reshape(-1) for n, s in scores.items()])
        if k < rounds:
            threshold = torch.kthvalue(flat, total - keep + 1).values
            for n, s in scores.items():
                masks[n] = masks[n] & (s >= threshold)
        else:
            chosen = torch.zeros(total, dtype=torch.bool)
            chosen[torch.topk(flat, keep, sorted=False).indices] = True
            offset = 0
            for n, m in masks.items():
                masks[n] = m & chosen[offset : offset + m.numel()].view_as(m)
                offset += m.numel()
        if progress is not None:
            progress(k, rounds)
    return masks


__all__ = [
    "WEIGHT_KINDS",
    "densities",
    "layer_density",
    "linearized",
    "log_synexp",
    "log_synexp_of_densities",
    "synflow_R",
    "synflow_prune",
    "synflow_scores",
]
