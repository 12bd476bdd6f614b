"""Data augmentation on the training device, drawn from a generator seeded per (seed, epoch).

Policies (``--augment``):

- ``none``: the images as stored.
- ``crop``: a random crop of the stored size from the image zero-padded by an eighth of its
  side on every edge (4 pixels at 32x32, 1 at 8x8).
- ``flip``: a random horizontal flip of half the images.
- ``light``: the CIFAR standard, ``crop`` then ``flip``.
- ``auto`` (the default): ``light`` for natural images, ``crop`` for digits and MNIST, where
  a mirrored digit is another glyph; the recipe records the policy that ran.

Augmentation runs on whole uint8 batches where they live (on the GPU for CUDA runs), before the
resize and normalization of :func:`widthsearch.train.data.normalize_batch`, and evaluation never
sees it.
Its random draws come from a generator seeded by :func:`epoch_generator` from the run's seed and the
epoch alone, so every candidate of one seed sees the same crops and flips in the same order, and a
run resumed at an epoch boundary draws what an uninterrupted one would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from widthsearch.errors import WidthSearchError

if TYPE_CHECKING:
    import torch

POLICIES = ("none", "crop", "flip", "light")
DEFAULT_POLICY = "auto"
NO_FLIP_DATA = ("digits", "mnist")
"""Data set kinds whose images must not be mirrored (``auto`` crops them only)."""


def resolve_policy(policy: str, data_spec: str) -> str:
    """The policy that runs: ``policy``, or for ``auto`` the one that suits ``data_spec``.

    Raises:
        WidthSearchError: an unknown policy.
    """
    if policy == "auto":
        kind = data_spec.partition(":")[0].strip().lower()
        return "crop" if kind in NO_FLIP_DATA else "light"
    if policy not in POLICIES:
        choices = ", ".join(("auto", *POLICIES))
        raise WidthSearchError(f"unknown augmentation '{policy}'; use {choices}")
    return policy


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The generator of one epoch's augmentation draws, on ``device`` (no host sync on CUDA)."""
    import torch

    gen = torch.Generator(device=device)
    gen.manual_seed((seed * 1_000_003 + epoch) * 7 + 1)  # not the data order's stream
    return gen


def augment(images: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    """A randomly cropped and/or flipped copy of a batch (N, C, H, W) of any dtype."""
    import torch
    import torch.nn.functional as F

    if policy == "none":
        return images
    n, c, h, w = images.shape
    device = images.device
    if policy in ("crop", "light"):
        ph, pw = max(1, h // 8), max(1, w // 8)
        padded = F.pad(images, (pw, pw, ph, ph))
        dy = torch.randint(0, 2 * ph + 1, (n, 1), device=device, generator=gen)
        dx = torch.randint(0, 2 * pw + 1, (n, 1), device=device, generator=gen)
        rows = (dy + torch.arange(h, device=device))[:, None, :, None]
        cols = (dx + torch.arange(w, device=device))[:, None, None, :]
        batch = torch.arange(n, device=device)[:, None, None, None]
        chans = torch.arange(c, device=device)[None, :, None, None]
        images = padded[batch, chans, rows, cols]
    if policy == "crop":
        return images
    flip = torch.rand(n, device=device, generator=gen) < 0.5
    return torch.where(flip[:, None, None, None], images.flip(3), images)


__all__ = ["DEFAULT_POLICY", "POLICIES", "augment", "epoch_generator", "resolve_policy"]
