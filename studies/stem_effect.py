"""What timm's ImageNet stems cost on 32x32 images: --stem timm against --stem cifar.

    uv run python studies/stem_effect.py --data cifar10:PATH [--models resnet18,efficientnet_b0]
        [--epochs 10] [--seeds 0] [--batch-size 256] [--train-subset N] [--device auto]
        [--timm-kwargs JSON] [--json OUT.json]

Each base model is trained from scratch on the held-out split of the data with the verify
recipe (AdamW, warm-up and cosine, label smoothing, ``auto`` augmentation), once with timm's
stem and once with the first 4x of downsampling removed (:mod:`widthsearch.train.stem`), same seeds,
same data order. Prints validation top-1, MACs per image as trained and training images/s.
"""

from __future__ import annotations

import argparse
import json
import statistics

import timm
import torch

from widthsearch.train.augment import resolve_policy
from widthsearch.train.data import Split, load_dataset
from widthsearch.train.loop import Recipe, resolve_device, train
from widthsearch.train.stem import apply_stem
from widthsearch.verify import count_trained_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a data spec, e.g. cifar10:PATH")
    p.add_argument("--models", default="resnet18,efficientnet_b0")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seeds", default="0")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--train-subset", type=int, help="train on the first N training images")
    p.add_argument("--device", default="auto")
    p.add_argument(
        "--timm-kwargs",
        default="{}",
        help="JSON kwargs for timm, e.g. '{\"channels\": [16, 32, 64, 128]}'",
    )
    p.add_argument("--json", help="also write the results to this file")
    a = p.parse_args()
    device = resolve_device(a.device)
    size = (3, 32, 32)
    data = load_dataset(a.data, size)
    if a.train_subset:
        from dataclasses import replace

        t = data.train
        data = replace(data, train=Split(t.labels[: a.train_subset], t.images[: a.train_subset]))
    seeds = [int(s) for s in a.seeds.split(",")]
    kwargs = json.loads(a.timm_kwargs)
    augment = resolve_policy("auto", a.data)
    rows = []
    for model in a.models.split(","):
        for stem in ("timm", "cifar"):
            recipe = Recipe(
                epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, augment=augment, stem=stem
            )

            def build(model=model):
                return timm.create_model(model, num_classes=data.num_classes, **kwargs)

            params, macs = count_trained_model(apply_stem(build(), stem, size), size)
            runs = [train(build, data, size, recipe, s, device) for s in seeds]
            top1 = [r.top1 for r in runs]
            row = {
                "model": model,
                "timm_kwargs": kwargs,
                "stem": stem,
                "seeds": seeds,
                "top1": top1,
                "top1_mean": statistics.fmean(top1),
                "params": params,
                "macs": macs,
                "images_per_second": statistics.fmean(r.images_per_second for r in runs),
                "epochs": a.epochs,
                "augment": augment,
            }
            rows.append(row)
            print(
                f"{model:18s} stem {stem:5s}: top-1 {100 * row['top1_mean']:.1f}% "
                f"({', '.join(f'{100 * v:.1f}' for v in top1)}; seeds {a.seeds}), "
                f"{macs / 1e6:.1f}M MACs, {row['images_per_second']:.0f} img/s",
                flush=True,
            )
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    print(f"{data.describe()}; {a.epochs} epochs, batch {a.batch_size}, augment {augment}, {name}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": name, "data": data.describe(), "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
