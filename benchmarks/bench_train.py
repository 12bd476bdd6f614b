"""Trainer throughput against a plain timm training loop on the same model and batch.

    uv run python benchmarks/bench_train.py [--models resnet18,mobilenetv2_100] [--input-size 32]
        [--batch-size 256] [--steps 50] [--device auto] [--augment light] [--compile]
        [--json OUT.json]

Both train the same timm model (10 classes) on the same uint8 images, prepared on the device
the same way (normalize, resize), with AdamW; on CUDA both use bfloat16 autocast and
channels_last, and the images live on the GPU. The plain loop is what a timm user writes by
hand: contiguous batches, no schedule, no augmentation, no loss reads, no checkpoints, no hooks.
The trainer is :func:`widthsearch.train.train` over two epochs of ``steps`` batches each, with
its shuffled order, its augmentation policy (``--augment``), its learning-rate schedule and its
loss reads; its images/s are counted over training steps (evaluation excluded). The plain loop
runs the same number of steps and is timed the same way, first steps included in both. The
two alternate ``--repeats`` times and the best of each counts: whichever runs first pays for
cold caches.
"""

from __future__ import annotations

import argparse
import json
import time

import timm
import torch
import torch.nn.functional as F

from widthsearch.train.data import Dataset, Split, normalize_batch
from widthsearch.train.loop import Recipe, resolve_device, train


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
    images = data.train.images.to(device)
    labels = data.train.labels.to(device)
    model.train()
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    n = len(labels) // batch
    for i in range(steps):
        part = slice((i % n) * batch, (i % n + 1) * batch)  # the data set holds one epoch
        x = normalize_batch(images[part], data, size, device, channels_last=cuda)
        y = labels[part]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if cuda:
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - start)


def bench(model: str, a: argparse.Namespace, device: torch.device) -> dict:
    size = (3, a.input_size, a.input_size)
    data = synthetic(a.batch_size * a.steps, a.input_size)
    recipe = Recipe(epochs=2, batch_size=a.batch_size, augment=a.augment)

    def build():
        return timm.create_model(model, num_classes=10)

    ours, plain = [], []
    for _ in range(a.repeats):  # alternated: the first run of a shape warms caches for both
        plain.append(plain_loop(model, data, size, a.batch_size, 2 * a.steps, device))
        result = train(build, data, size, recipe, 0, device, compile=a.compile)
        ours.append(result.images_per_second)
    return {
        "model": model,
        "input_size": a.input_size,
        "batch_size": a.batch_size,
        "steps": 2 * a.steps,
        "augment": a.augment,
        "compile": a.compile,
        "trainer_runs": ours,
        "plain_runs": plain,
        "trainer": max(ours),
        "plain": max(plain),
        "ratio": max(ours) / max(plain),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet18,mobilenetv2_100")
    p.add_argument("--input-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--device", default="auto")
    p.add_argument("--augment", default="light", help="the trainer's augmentation policy")
    p.add_argument("--compile", action="store_true", help="torch.compile the trainer's model")
    p.add_argument("--repeats", type=int, default=3, help="alternating runs; best of each")
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args()
    device = resolve_device(a.device)
    name = (
        torch.cuda.get_device_name() if device.type == "cuda" else f"cpu x{torch.get_num_threads()}"
    )
    rows = []
    for model in a.models.split(","):
        r = bench(model, a, device)
        rows.append(r)
        print(
            f"{model} at {a.input_size}x{a.input_size}, batch {a.batch_size}, {r['steps']} "
            f"steps, best of {a.repeats}, on {name}: trainer ({a.augment} augmentation"
            f"{', compiled' if a.compile else ''}) {r['trainer']:.0f} img/s, plain timm loop "
            f"{r['plain']:.0f} img/s, ratio {r['ratio']:.3f}",
            flush=True,
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": name, "torch": torch.__version__, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
