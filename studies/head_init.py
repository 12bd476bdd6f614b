"""What timm's classifier init costs a short verification run: --head timm against --head zero.

    uv run python studies/head_init.py --data cifar10:PATH
        [--models resnet18,mobilenetv2_100,efficientnet_b0] [--policies timm,zero]
        [--epochs 3] [--seeds 0,1,2] [--batch-size 128] [--lr 0.002] [--train-subset 5000]
        [--device auto] [--jobs 1] [--json OUT.json]

Each base model is trained from scratch with the verify recipe (AdamW, warm-up and cosine, label
smoothing, ``auto`` augmentation, timm stem) once per head policy (:mod:`widthsearch.train.head`),
same seeds, same data order, and validated on the fixed held-out split. Prints, per model and
policy, the cross-entropy of the untrained model on one validation batch (chance: ln classes), top-1
per seed, and the paired difference of each policy to the first one (mean ± half the 95% t-interval,
in points). ``--jobs 2`` trains two runs at once, one CPU thread each.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import statistics
from concurrent.futures import ProcessPoolExecutor

import timm
import torch

from widthsearch.train.augment import resolve_policy
from widthsearch.train.data import load_dataset, prepare
from widthsearch.train.head import apply_head
from widthsearch.train.loop import Recipe, resolve_device, train
from widthsearch.verify.verdict import paired

SIZE = (3, 32, 32)


@functools.cache
def _dataset(spec: str):
    """The data set, decoded once per process (CIFAR-10's archive takes seconds to decode)."""
    return load_dataset(spec, SIZE)


def _run(job: tuple) -> tuple:
    """One training run, in its own process when ``--jobs`` > 1."""
    spec, model, policy, seed, recipe_kwargs, device, threads = job
    if threads:
        torch.set_num_threads(threads)
    data = _dataset(spec)
    recipe = Recipe(head=policy, **recipe_kwargs)

    def build():
        return timm.create_model(model, num_classes=data.num_classes)

    result = train(build, data, SIZE, recipe, seed, torch.device(device))
    return model, policy, seed, result.top1, result.history


def loss_on_images(data, model: str, policy: str) -> float:
    """Cross-entropy of the untrained model (train mode, as the first step sees it) on the
    first 256 validation images."""
    torch.manual_seed(0)
    net = apply_head(timm.create_model(model, num_classes=data.num_classes), policy)
    x = prepare(data.val.images[:256], data, SIZE, torch.device("cpu"))
    with torch.no_grad():
        return torch.nn.functional.cross_entropy(net(x), data.val.labels[:256]).item()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a data spec, e.g. cifar10:PATH")
    p.add_argument("--models", default="resnet18,mobilenetv2_100,efficientnet_b0")
    p.add_argument("--policies", default="timm,zero")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train-subset", type=int, default=5000)
    p.add_argument("--device", default="auto")
    p.add_argument("--jobs", type=int, default=1, help="runs at once (CPU: one thread each)")
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args()
    device = resolve_device(a.device)
    models, policies = a.models.split(","), a.policies.split(",")
    seeds = [int(s) for s in a.seeds.split(",")]
    recipe = dict(
        epochs=a.epochs,
        batch_size=a.batch_size,
        lr=a.lr,
        augment=resolve_policy("auto", a.data),
        train_subset=a.train_subset,
    )
    threads = 1 if a.jobs > 1 and device.type == "cpu" else 0
    jobs = [
        (a.data, m, pol, s, recipe, str(device), threads)
        for m in models
        for pol in policies
        for s in seeds
    ]
    top1: dict[tuple[str, str], dict[int, float]] = {}
    rows = []
    with ProcessPoolExecutor(max(1, a.jobs)) as pool:
        for model, policy, seed, value, history in pool.map(_run, jobs):
            top1.setdefault((model, policy), {})[seed] = value
            rows.append(
                {"model": model, "head": policy, "seed": seed, "top1": value, "history": history}
            )
            print(f"{model} --head {policy} seed {seed}: top-1 {100 * value:.1f}%", flush=True)
    data = _dataset(a.data)
    classes = data.num_classes
    print(
        f"\nchance: top-1 {100 / classes:.0f}%, "
        f"cross-entropy ln {classes} = {math.log(classes):.2f}"
    )
    print(
        "| model | head | loss at init | top-1 % (mean ± std) | per seed | vs " + policies[0] + " |"
    )
    print("|---|---|---|---|---|---|")
    for model in models:
        for policy in policies:
            values = top1[(model, policy)]
            v = list(values.values())
            spread = statistics.stdev(v) if len(v) > 1 else 0.0
            diff = (
                "" if policy == policies[0] else paired(values, top1[(model, policies[0])]).text()
            )
            print(
                f"| {model} | {policy} | {loss_on_images(data, model, policy):.2f} "
                f"| {100 * statistics.fmean(v):.1f} ± {100 * spread:.1f} "
                f"| {', '.join(f'{100 * values[s]:.1f}' for s in sorted(values))} | {diff} |"
            )
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(
        f"\n{a.data}: {a.train_subset or 'all'} training images, {a.epochs} epochs, batch "
        f"{a.batch_size}, lr {a.lr:g}, augment {recipe['augment']}, timm stem, seeds {a.seeds}, "
        f"{name}"
    )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": name, "recipe": recipe, "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
