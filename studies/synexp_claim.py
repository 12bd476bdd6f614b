"""Measure SynExp's claim E[R] = Π_l p_l · R beyond the case where it is exact.

Three nets, each under Monte-Carlo masks of given layer densities p_l, with SynFlow's R
(linearized float64 net, all-ones input):

1. a plain conv chain, weight-level masks: the claim is exact (ratio 1 within sampling error);
2. the same chain, channel-level masks (adjacent layers share the channel masks of their common
   group, r per group, p_l = r_in · r_out): each group's r enters a path once, not twice;
3. a residual chain (identity skips around pairs of convs), weight-level masks: paths that skip
   layers do not pay those layers' densities.

Prints E[R] / (Π p_l · R) with its standard error for each.

    uv run python studies/synexp_claim.py [--samples 4000]
"""

from __future__ import annotations

import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn

from widthsearch.solve.synexp import linearized, synflow_R

SIZE = (3, 8, 8)


class Chain(nn.Module):
    def __init__(self, width: int = 8, depth: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.convs = nn.ModuleList(
            nn.Conv2d(width, width, 3, padding=1, bias=False) for _ in range(depth)
        )

    def forward(self, x):
        x = F.relu(self.stem(x))
        for c in self.convs:
            x = F.relu(c(x))
        return x


class Residual(Chain):
    def forward(self, x):
        x = F.relu(self.stem(x))
        for a, b in zip(self.convs[::2], self.convs[1::2], strict=True):
            x = x + b(F.relu(a(x)))
        return x


def weight_masks(net, densities, gen):
    return {
        n: (torch.rand(p.shape, generator=gen, dtype=torch.float64) < densities[n])
        for n, p in net.named_parameters()
    }


def channel_masks(net, r, gen):
    """One keep-mask per channel group: stem output and each conv output are groups."""
    names = [n for n, _ in net.named_parameters()]
    groups = [torch.rand(8, generator=gen, dtype=torch.float64) < r[i] for i in range(len(names))]
    masks = {}
    params = dict(net.named_parameters())
    for i, n in enumerate(names):
        out_m = groups[i].view(-1, 1, 1, 1)
        in_m = torch.ones(params[n].shape[1], dtype=torch.bool) if i == 0 else groups[i - 1]
        masks[n] = out_m & in_m.view(1, -1, 1, 1)
    return masks


def mc_ratio(net, make_masks, predicted, samples, seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = dict(net.named_parameters())
    originals = {n: p.detach().clone() for n, p in params.items()}
    values = []
    with torch.no_grad():
        for _ in range(samples):
            masks = make_masks(gen)
            for n, p in params.items():
                p.copy_(originals[n] * masks[n])
            values.append(synflow_R(net, SIZE).item())
        for n, p in params.items():
            p.copy_(originals[n])
    v = torch.tensor(values, dtype=torch.float64)
    return v.mean().item() / predicted, v.std().item() / math.sqrt(samples) / predicted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    args = parser.parse_args()
    torch.manual_seed(0)

    chain = linearized(Chain())
    dense = synflow_R(chain, SIZE).item()
    names = [n for n, _ in chain.named_parameters()]
    p = dict(zip(names, [0.8, 0.5, 0.6, 0.7, 0.5], strict=True))
    ratio, se = mc_ratio(
        chain, lambda g: weight_masks(chain, p, g), math.prod(p.values()) * dense, args.samples
    )
    print(f"plain chain, weight masks:    E[R]/(prod p R) = {ratio:.3f} +- {se:.3f}")

    r = [0.8, 0.5, 0.6, 0.7, 0.5]  # keep probability of each layer's output channels
    p_ch = [r[0]] + [r[i - 1] * r[i] for i in range(1, len(r))]
    predicted = math.prod(p_ch) * dense
    ratio, se = mc_ratio(chain, lambda g: channel_masks(chain, r, g), predicted, args.samples)
    print(
        f"plain chain, channel masks:   E[R]/(prod p R) = {ratio:.3f} +- {se:.3f}  "
        f"(prod r over groups / prod p = {math.prod(r) / math.prod(p_ch):.3f})"
    )

    res = linearized(Residual())
    dense = synflow_R(res, SIZE).item()
    ratio, se = mc_ratio(
        res, lambda g: weight_masks(res, p, g), math.prod(p.values()) * dense, args.samples
    )
    print(f"residual net, weight masks:   E[R]/(prod p R) = {ratio:.3f} +- {se:.3f}")


if __name__ == "__main__":
    main()
