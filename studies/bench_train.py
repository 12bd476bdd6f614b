"""Trainer throughput against a plain timm training loop on the same model and batch.

    uv run python studies/bench_train.py [--model efficientnet_b0] [--input-size 224]
        [--batch-size 128] [--steps 50] [--device auto]

Both train the same timm model on the same uint8 images, prepared on the device the same way
(normalize, resize), with AdamW; on CUDA both use bfloat16 autocast and channels_last. The plain
loop is what a timm user writes by hand: no schedule, no loss reads, no checkpoints, no hooks.
The trainer is :func:`widthsearch.train.train` over two epochs of ``steps`` batches each, its
images/s counted over training steps (evaluation excluded); the plain loop runs the same number
of steps and is timed the same way, first steps included in both. The two alternate
``--repeats`` times and the best of each counts: whichever runs first pays for cold caches.
"""

from __future__ import annotations

import argparse
import time

import timm
import torch
import torch.nn.functional as F

from widthsearch.data import Dataset, Split, prepare
from widthsearch.train import Recipe, resolve_device, train


def synthetic(n: int, size: int) -> Dataset:
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 10, (n,), generator=gen)
    val = Split(labels[:64], images[:64])
    return Dataset(
        "synthetic", "synthetic", Split(labels, images), val, 10, 3, (0.5,) * 3, (0.25,) * 3
    )


def plain_loop(model_name, data, size, batch, steps, device) -> float:
    cuda = device.type == "cuda"
    torch.manual_seed(0)
    model = timm.create_model(model_name, num_classes=10).to(device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    images = data.train.images.to(device) if cuda else data.train.images
    labels = data.train.labels.to(device) if cuda else data.train.labels
    model.train()
    start = time.perf_counter()
    n = len(labels) // batch
    for i in range(steps):
        part = slice((i % n) * batch, (i % n + 1) * batch)  # the data set holds one epoch
        x = prepare(images[part], data, size, device, channels_last=cuda)
        y = labels[part]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="efficientnet_b0")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs; best of each")
    a = p.parse_args()
    device = resolve_device(a.device)
    size = (3, a.input_size, a.input_size)
    data = synthetic(a.batch_size * a.steps, a.input_size)
    recipe = Recipe(epochs=2, batch_size=a.batch_size)

    def build():
        return timm.create_model(a.model, num_classes=10)

    ours, plain = [], []
    for _ in range(a.repeats):  # alternated: the first run of a shape warms caches for both
        plain.append(plain_loop(a.model, data, size, a.batch_size, 2 * a.steps, device))
        ours.append(train(build, data, size, recipe, 0, device).images_per_second)
    print(f"trainer img/s: {[round(v, 1) for v in ours]}, plain: {[round(v, 1) for v in plain]}")
    ours, plain = max(ours), max(plain)
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    print(
        f"{a.model} at {a.input_size}x{a.input_size}, batch {a.batch_size}, {2 * a.steps} steps, "
        f"best of {a.repeats}, on "
        f"{name}: trainer {ours:.1f} img/s, plain timm loop {plain:.1f} img/s, "
        f"ratio {ours / plain:.3f}"
    )


if __name__ == "__main__":
    main()
