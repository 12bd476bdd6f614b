"""Benchmark: does short training on a CPU rank configurations as their full training does?

Training in the loop (``reconfig --train-top K``) is worth its cost only where a short run ranks
configurations of equal cost better than the init-time objective does. Channel-Bench-Macro
gives the ground truth: the 60-epoch, 3-seed CIFAR-10 accuracy of every width configuration of
its MobileNet. This benchmark takes 16 of them at about equal MACs near the small end of the
table (MACs 15-25M: 15 spread evenly over the accuracy range there, and the uniform 0.25x code
1111111 at 14.3M), trains each from scratch on CIFAR-10 (the training images of
``../shared/data``, the held-out split of :func:`widthsearch.train.data.held_out_split` for
validation) with the route's training (:func:`widthsearch.train.train`, the recipe ``verify``
uses), 2 seeds, at two scales: the largest that fits ``--minutes`` of this machine, and a third
of it. It reports Kendall's τ of the trained ranking (the mean of the seeds, and each seed alone)
against the table's means, next to SynExp's τ on the same 16, the seeds' spread, and the cost
per configuration. Run it alone on the machine: its timings size the runs.

    uv run python benchmarks/fidelity.py [--minutes 60] [--data DIR] [--cifar PATH] [--json F]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from groundtruth import default_data, kendall_tau_b, lattice, load_table, parse  # noqa: E402

LOW, HIGH = 15e6, 25e6
"""The MACs band of the 16 configurations."""
UNIFORM = "1111111"
SEEDS = (0, 1)
BATCH = 64


def pick_codes(table, n: int = 16) -> list[int]:
    """``n - 1`` codes evenly spread over the accuracy range of the MACs band, and the uniform
    code (indices into the table)."""
    band = np.flatnonzero((table.macs >= LOW) & (table.macs <= HIGH))
    order = band[np.argsort(table.acc[band], kind="stable")]
    ranks = np.unique(np.rint(np.linspace(0, len(order) - 1, n - 1)).astype(int))
    chosen = [int(order[r]) for r in ranks]
    uniform = table.index(UNIFORM)
    return [*chosen, uniform] if uniform not in chosen else chosen


def default_cifar() -> Path:
    return default_data().parent / "cifar10-train.tar.gz"


def images_per_second(space, widths, data, recipe, device) -> float:
    """Training images per second of one configuration (a few steps, after warm-up)."""
    from widthsearch.train.loop import step_seconds

    seconds = step_seconds(lambda: space.realize(widths), data, (3, 32, 32), recipe, device)
    return recipe.batch_size / seconds


def run_scale(space, configs, data, recipe, device, label: str) -> list[dict[str, Any]]:
    """Train every configuration with every seed at ``recipe``; their top-1 and seconds."""
    from widthsearch.train.loop import train

    out = []
    for i, (code, widths) in enumerate(configs, 1):
        row: dict[str, Any] = {"code": code, "top1": [], "seconds": 0.0}
        for seed in SEEDS:
            res = train(lambda w=widths: space.realize(w), data, (3, 32, 32), recipe, seed, device)
            row["top1"].append(res.top1)
            row["seconds"] += res.wall_seconds
        print(
            f"[{label}] {i}/{len(configs)} {code}: top-1 "
            + ", ".join(f"{100 * t:.2f}" for t in row["top1"])
            + f" ({row['seconds']:.0f} s)",
            flush=True,
        )
        out.append(row)
    return out


def taus(rows, truth: np.ndarray) -> dict[str, float]:
    trained = np.array([np.mean(r["top1"]) for r in rows])
    out = {"mean_of_seeds": kendall_tau_b(trained, truth)}
    for k, _ in enumerate(SEEDS):
        out[f"seed_{k}"] = kendall_tau_b(np.array([r["top1"][k] for r in rows]), truth)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0, help="the full scale's time (60)")
    p.add_argument("--data", type=Path, default=None, help="the channel-bench-macro folder")
    p.add_argument("--cifar", type=Path, default=None, help="cifar10-train.tar.gz")
    p.add_argument("--json", type=Path, help="also write the results as JSON")
    p.add_argument(
        "--configs", type=int, default=16, help="configurations (16; fewer: a smoke run)"
    )
    args = p.parse_args(argv)
    import torch

    from widthsearch.solve import log_synexp
    from widthsearch.train.data import load_dataset
    from widthsearch.train.loop import Recipe

    data_dir = args.data or default_data()
    cifar = args.cifar or default_cifar()
    if not (data_dir / "Results_MobileNet.json").is_file() or not cifar.is_file():
        print(f"need {data_dir}/Results_MobileNet.json and {cifar}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    table = load_table(data_dir / "Results_MobileNet.json", "MobileNet")
    space, free = parse("MobileNet")
    idx = pick_codes(table, args.configs)
    widths = lattice(space, free, table.digits[idx])
    configs = [(table.codes[i], tuple(int(x) for x in w)) for i, w in zip(idx, widths, strict=True)]
    truth = table.acc[idx]
    synexp = np.array([log_synexp(space, w) for _, w in configs])
    data = load_dataset(f"cifar10:{cifar}", (3, 32, 32))
    device = torch.device("cpu")
    probe = Recipe(epochs=1, batch_size=BATCH, augment="light", head="timm")
    ips = [images_per_second(space, w, data, probe, device) for _, w in configs]
    # validation costs a forward pass of the held-out images per run (about a third of a
    # training step per image): the budget is shared between the two
    per_image = float(np.mean([1 / x for x in ips]))
    runs = len(configs) * len(SEEDS)
    budget = 60 * args.minutes
    val_cost = runs * len(data.val) * per_image / 3
    n_full = max(BATCH, int((budget - val_cost) / (runs * per_image)) // BATCH * BATCH)
    scales = {"full": n_full, "third": max(BATCH, n_full // 3 // BATCH * BATCH)}
    print(
        f"{len(configs)} configurations, MACs {table.macs[idx].min() / 1e6:.1f}-"
        f"{table.macs[idx].max() / 1e6:.1f}M, table top-1 {truth.min():.2f}-{truth.max():.2f}; "
        f"{np.mean(ips):.0f} training images/s on average; one epoch over {scales['full']:,} "
        f"images per run (full) and {scales['third']:,} (a third), {len(SEEDS)} seeds; "
        f"validation {len(data.val):,} held-out images",
        flush=True,
    )
    results: dict[str, Any] = {
        "codes": [c for c, _ in configs],
        "table_mean": truth.tolist(),
        "table_std": table.seeds[idx].std(axis=1, ddof=1).tolist(),
        "macs": table.macs[idx].tolist(),
        "synexp": synexp.tolist(),
        "synexp_tau": kendall_tau_b(synexp, truth),
        "table_one_seed_tau": float(
            np.mean(
                [
                    kendall_tau_b(table.seeds[idx, k], np.delete(table.seeds[idx], k, 1).mean(1))
                    for k in range(3)
                ]
            )
        ),
        "images_per_second": ips,
        "scales": {},
    }
    for label in ("third", "full"):
        recipe = Recipe(
            epochs=1, batch_size=BATCH, augment="light", head="timm", train_subset=scales[label]
        )
        rows = run_scale(space, configs, data, recipe, device, label)
        seeds = np.array([r["top1"] for r in rows])
        results["scales"][label] = {
            "images": scales[label],
            "rows": rows,
            "tau": taus(rows, truth),
            "seed_diff_std": float(np.std(seeds[:, 0] - seeds[:, 1], ddof=1)),
            "seconds_per_config": float(np.mean([r["seconds"] for r in rows])),
            "top1_range": [float(seeds.mean(axis=1).min()), float(seeds.mean(axis=1).max())],
        }
    results["seconds"] = time.perf_counter() - start
    print(format_results(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def format_results(r: dict[str, Any]) -> str:
    lines = [
        f"Kendall τ against the table's 60-epoch means, {len(r['codes'])} MobileNet "
        f"configurations at {min(r['macs']) / 1e6:.1f}-{max(r['macs']) / 1e6:.1f}M MACs:",
        f"- SynExp (at init, no training): τ = {r['synexp_tau']:+.3f}",
        f"- one of the table's own 60-epoch seeds against the mean of the other two: τ = "
        f"{r['table_one_seed_tau']:+.3f} (what a full-length single run could reach)",
    ]
    for label, s in r["scales"].items():
        t = s["tau"]
        lines.append(
            f"- trained, {label} scale (one epoch over {s['images']:,} CIFAR-10 images, "
            f"{len(SEEDS)} seeds): τ = {t['mean_of_seeds']:+.3f} (mean of seeds; each seed "
            + ", ".join(f"{t[f'seed_{k}']:+.3f}" for k in range(len(SEEDS)))
            + f"); top-1 {100 * s['top1_range'][0]:.1f}-{100 * s['top1_range'][1]:.1f}%, "
            f"seed-to-seed std of a difference {100 * s['seed_diff_std']:.2f} points; "
            f"{s['seconds_per_config']:.0f} s per configuration ({len(SEEDS)} runs)"
        )
    lines.append(f"({r['seconds'] / 60:.0f} min in all)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
