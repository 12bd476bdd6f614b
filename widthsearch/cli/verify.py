"""``widthsearch verify``: train candidates next to the base and a uniform control."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from widthsearch.hardware.timing import describe_load
from widthsearch.space.source import model_slug
from widthsearch.storage import DEFAULT_STORAGE
from widthsearch.train.augment import POLICIES as AUGMENTS
from widthsearch.train.data import load_dataset
from widthsearch.train.head import DEFAULT_POLICY as HEAD
from widthsearch.train.head import POLICIES as HEADS
from widthsearch.train.loop import Recipe, resolve_device
from widthsearch.train.stem import POLICIES as STEMS
from widthsearch.verify import (
    AUTO_SHA_FROM,
    LATENCY_RUNS,
    MATCHES,
    PRUNERS,
    Candidate,
    Execution,
    Progress,
    VerifyError,
    VerifySettings,
    epoch_lines,
    mean_std,
    plan_from_study,
    plan_from_width_files,
    quick_check,
    run_verify,
    verdict_text,
)
from widthsearch.verify.progress import EpochHook, StepHook

from ._args import (
    add_input_size,
    add_quick_check_args,
    nonnegative_int,
    positive_float,
    positive_int,
    table,
)


def vs_cell(s: dict[str, Any], key: str) -> str:
    """A verdict cell; ``pruned`` for a candidate whose every run was pruned."""

    if s.get("pruned") and not s["seeds"]:
        return "pruned"
    return verdict_text(s.get(key))


def ms_cell(ms: float | None, base_ms: float | None) -> str:
    """``2.31 (1.06x)``: milliseconds and the ratio to the base's; ``-`` when not known."""
    if not ms:
        return "-"
    return f"{ms:.2f}" + (f" ({ms / base_ms:.2f}x)" if base_ms else "")


def format_verify(info: dict[str, Any]) -> str:
    """The ``verify`` report of :meth:`VerifyReport.to_dict`."""

    c, h, w = info["input_size"]
    r = info["recipe"]
    randoms = sum(s["kind"] == "random" for s in info["results"])
    seeds = ",".join(map(str, info["seeds"]))
    quick = quick_check(r)
    cost = "params" if info.get("match") == "params" else "MACs"
    lines = [
        f"{info['model']}"
        + (f" (study '{info['study']}')" if info["study"] else "")
        + f": {info['pick']}, the base model and a uniform-width control"
        + (f" and {randoms} random-shape controls" if randoms else "")
        + f" at the candidate's {cost}",
        f"data {info['data_description']}; trained at {c}x{h}x{w} on {info['device']}, "
        f"{r['epochs']} epoch{'s' * (r['epochs'] != 1)}, batch {r['batch_size']}, "
        f"AdamW lr {r['lr']:g}, {r.get('head', 'timm')} head, seeds {seeds} "
        f"(n={len(info['seeds'])})"
        + (f"; QUICK CHECK: {quick}; not comparable with full runs" if quick else ""),
        f"pruner: {PRUNER_WORDS.get(info.get('pruner') or 'none', info.get('pruner'))}"
        + (f"; runs are trials of '{info['verification_study']}'" if info.get("study") else ""),
        "",
    ]
    rows = []
    base: dict[str, Any] = next((s for s in info["results"] if s["kind"] == "base"), {})

    def withratio(s: dict[str, Any], key: str) -> str:
        if s[key] is None:
            return "-"
        return f"{s[key]:,}" + (f" ({s[key] / base[key]:.2f}x)" if base.get(key) else "")

    latency = any(s.get("predicted_latency_ms") is not None for s in info["results"])
    measured = any(s.get("latency_ms") is not None for s in info["results"])
    pruned = any(s.get("pruned") for s in info["results"])
    for s in info["results"]:
        name = s["candidate"] + (f" (= {s['same_as']})" if s["same_as"] else "")
        n = s.get("n", len(s["seeds"]))
        row = [
            name,
            s["kind"],
            f"{s['log_synexp']:+.2f}",
            withratio(s, "params"),
            withratio(s, "macs"),
            *([ms_cell(s.get("latency_ms"), base.get("latency_ms"))] if measured else []),
            mean_std(s["top1"], s["top1_std"], n, 100),
            vs_cell(s, "vs_base") if s["kind"] != "base" else "",
            vs_cell(s, "vs_control") if s["kind"] == "candidate" else "",
        ]
        if randoms:
            row.append(vs_cell(s, "vs_random") if s["kind"] == "candidate" else "")
        row += [mean_std(s["loss"], s["loss_std"], n, digits=3)]
        if pruned:
            row.append(
                ", ".join(f"s{p['seed']}@{p['epoch']}: {100 * p['top1']:.1f}" for p in s["pruned"])
            )
        if latency:
            row.append(ms_cell(s.get("predicted_latency_ms"), base.get("predicted_latency_ms")))
        row += [f"{s['images_per_second']:.0f}" if s["seeds"] else "-", f"{s['wall_seconds']:.0f}"]
        rows.append(row)
    header = ["candidate", "kind", "log SynExp", "params", "MACs"] + ["latency ms"] * measured
    header += ["top-1 %", "vs base"]
    header += ["vs control"] + ["vs random"] * bool(randoms) + ["val loss"]
    header += ["pruned"] * pruned + ["pred ms"] * latency + ["img/s", "wall s"]
    lines.append(table(header, rows, right=set(range(2, len(header)))))
    lines += [
        "",
        f"params and MACs of the models as trained ({info['num_classes']} classes, {c}x{h}x{w}); "
        "log SynExp: gain over the base at the search's input size;"
        + (
            f" latency ms: measured as trained on {info['latency_device']}"
            f"{describe_load(info.get('latency_load'))};"
            if measured
            else ""
        ),
        "top-1 and val loss: last epoch on the validation split, mean ± std over seeds; "
        "vs base, vs control: top-1 difference in points, paired by seed,",
        "mean ± half its 95% t-interval (the smallest difference those seeds could detect); "
        "better or worse when the interval excludes 0, else equal within ±X (n), the interval "
        "lying inside ±X."
        + (
            " vs random: against the mean of the random-shape controls, seed by seed."
            if randoms
            else ""
        )
        + (
            " pruned: runs the pruner stopped, as seed@epoch: top-1 % then; they are left out "
            "of top-1, val loss and the paired verdicts (completed seeds only)."
            if pruned
            else ""
        )
        + (
            " pred ms: the study's predicted latency at the search's input size, next to the "
            "measured training img/s."
            if latency
            else ""
        ),
        *(f"verdict: {v}" for v in info.get("verdicts", [])),
        *(f"note: {n}" for n in info["notes"]),
        f"{info['trained']} run(s) trained"
        + (f" by {info['workers']} workers" if info.get("workers", 1) > 1 else "")
        + f", {info['skipped']} already finished"
        + (f"; results in {info['out']}" if info["out"] else "")
        + (f" and in study '{info['study']}'" if info["study"] else ""),
    ]
    return "\n".join(lines)


PRUNER_WORDS = {
    "sha": "successive halving (top third goes on at epochs r, 3r, 9r; base and control "
    "always finish)",
    "hyperband": "Hyperband (successive-halving brackets; base and control always finish)",
    "median": "median (below the median at an epoch stops; base and control always finish)",
    "none": "none (every run trains to the end)",
}


def log_line(message: str) -> None:
    """One line on stderr, above any progress bar."""
    from tqdm import tqdm

    tqdm.write(message, file=sys.stderr)


class TrainBars:
    """A tqdm bar per candidate and seed: epoch, training loss, validation accuracy."""

    def __init__(self, recipe: Recipe, n_train: int) -> None:
        self.total = recipe.total_steps(recipe.steps_per_epoch(n_train))

    def __call__(
        self, cand: Candidate, seed: int
    ) -> tuple[StepHook, EpochHook, Callable[[], None]]:
        from tqdm import tqdm

        bar = tqdm(total=self.total, desc=f"{cand.label} seed {seed}", unit="step", leave=True)
        state = {"acc": ""}

        def on_step(epoch: int, step: int, steps: int, loss: float) -> None:
            bar.n = epoch * steps + step + 1
            shown = f", loss {loss:.3f}" if math.isfinite(loss) else ""  # read every few steps
            bar.set_postfix_str(f"epoch {epoch + 1}{shown}{state['acc']}")

        def on_epoch(record: dict[str, float]) -> None:
            state["acc"] = f", val {100 * record['val_top1']:.1f}%"

        return on_step, on_epoch, bar.close


def train_progress(recipe: Recipe, n_train: int) -> Progress:
    """How training shows its progress: a bar per run on a terminal, else (a log file) a line
    per epoch."""
    if sys.stderr.isatty():
        return TrainBars(recipe, n_train)

    return epoch_lines(log_line, recipe.epochs_run(recipe.steps_per_epoch(n_train)))


def add_recipe_policy_args(p: argparse.ArgumentParser) -> None:
    """``--augment``, ``--stem``, ``--head`` and ``--compile``: how every model of a
    verification trains."""

    p.add_argument(
        "--augment",
        default="auto",
        choices=("auto", *AUGMENTS),
        help="augmentation on the training device: crop (pad by 1/8, random crop), flip, "
        "light (both), none; auto (default): light, or crop for digits and MNIST",
    )
    p.add_argument(
        "--stem",
        default="timm",
        choices=STEMS,
        help="timm (default): the model's ImageNet stem; cifar: the first 4x of downsampling "
        "removed, for 32x32 images (every model alike; MACs grow about 16x)",
    )
    p.add_argument(
        "--head",
        default=HEAD,
        choices=HEADS,
        help="zero: every model's logit layer starts at zero, so training starts at chance "
        "loss; timm: as timm initializes it (EfficientNet/MobileNet: sized for 1,000 classes, "
        "so 10-class models start at 2-3x chance loss); auto (default): zero where the "
        "untrained base starts above 1.5x chance loss, else timm",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="run training steps through torch.compile (worth it for long CUDA runs)",
    )


def run(args: argparse.Namespace) -> int:

    targets = args.targets
    files = [t for t in targets if t.endswith(".json")]
    if files and len(files) != len(targets):
        raise VerifyError("give one study name or width files (.json), not both")
    if not files and len(targets) != 1:
        raise VerifyError("give one study name (with --storage) or one or more width files")
    settings = VerifySettings(
        data=args.data,
        top=args.top,
        random=args.random,
        match=args.match,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        augment=args.augment,
        stem=args.stem,
        head=args.head,
        output=args.output,
        max_steps=args.max_steps,
        train_subset=args.train_subset,
    )
    recipe = settings.recipe()  # a recipe it refuses is said before anything is read
    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise VerifyError(f"--seeds takes integers like 0,1,2, got '{args.seeds}'") from None
    device = resolve_device(args.device)
    devices = tuple(d for d in (args.devices or "").split(",") if d.strip()) or None
    workers = len(devices) if devices else args.workers
    if files:
        plan = plan_from_width_files(files)
    else:
        plan = plan_from_study(targets[0], args.storage, top=settings.top, heartbeat=args.heartbeat)
    c, h, w = args.input_size or plan.space.input_size
    size = (c or plan.space.input_size[0], h, w)
    data = load_dataset(args.data, size)
    owner = plan.study.study_name if plan.study else model_slug(plan.space.model)
    out = args.out or f"{owner}-verify.csv"
    quiet = args.json or workers > 1  # spawned workers print their own epoch lines
    bars = None if quiet else train_progress(recipe, len(data.train))
    execution = Execution(
        device=device,
        workers=workers,
        devices=devices,
        pruner=args.pruner,
        storage_url=args.storage if files else None,
        heartbeat=args.heartbeat,
        out=out,
        compile=args.compile,
        latency_runs=args.latency_runs,
        retime=args.retime,
    )
    settings = replace(settings, input_size=size, seeds=seeds)
    report = run_verify(plan, data, settings, execution, progress=bars, log=log_line)
    info = report.to_dict()
    print(json.dumps(info, indent=2) if args.json else format_verify(info))
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``verify`` command."""

    p = sub.add_parser(
        "verify",
        help="train the top configs of a study, the base and a uniform control, and compare",
        description="Train the best front trials of a study (or the given width files), the "
        "unchanged base model and a uniform-width control at the first candidate's MACs from "
        "scratch, with one recipe, seeds and data order; print top-1 and loss as mean ± std "
        "over seeds and each candidate's paired difference to the base and the control with "
        "its 95% interval and verdict (better, worse, no detectable difference); store them "
        "in the study and a CSV. Each run is a trial of a verification study in the same "
        "storage: a pruner (successive halving by default from 6 candidates on) stops weak "
        "candidates early, --workers N processes (or --devices) share the queue, and the "
        "same command on another machine with the same PostgreSQL storage joins it. Finished "
        "runs are skipped; an interrupted run resumes from its last epoch checkpoint. Long "
        "runs print an estimate of their time first.",
    )
    p.add_argument("targets", nargs="+", metavar="STUDY|WIDTHS.json", help="a study or width files")
    p.add_argument(
        "--storage",
        metavar="URL",
        help=f"the study's storage (default {DEFAULT_STORAGE}); for width files, where their "
        "verification study goes (default: in memory, one worker)",
    )
    p.add_argument("--top", type=positive_int, default=3, help="front trials to train (default 3)")
    p.add_argument(
        "--random",
        type=nonnegative_int,
        default=0,
        metavar="N",
        help="also train N random-shape controls at the first candidate's MACs (as trained; "
        "params with --match params): random widths on the same grid, as uneven as the "
        "candidate, scaled to that cost; does SynExp beat chance at equal cost? (default 0)",
    )
    p.add_argument(
        "--data",
        default="digits",
        metavar="SPEC",
        help="digits (bundled, default), mnist:DIR, cifar10:PATH, cifar100:PATH, "
        "imagefolder:PATH (a folder of class folders or a .tar/.tar.gz of one); validation is "
        "held out from the training images",
    )
    p.add_argument("--epochs", type=positive_int, default=10, help="epochs (default 10)")
    p.add_argument("--batch-size", type=positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="AdamW peak lr (default 2e-3)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument(
        "--output",
        metavar="KEY",
        help="the part of the model's output to train on: a dict's key, a named tuple's field "
        "or a tuple's index (default: a tensor itself, else a dict's logits or out entry, a "
        "named tuple's logits field, else the first tensor); it must be [batch, classes]",
    )
    add_quick_check_args(p)
    add_recipe_policy_args(p)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        metavar="N",
        help="N processes claim runs from the queue (default 1; a width file needs a "
        "--storage to share them through)",
    )
    p.add_argument(
        "--devices",
        metavar="LIST",
        help="one worker per device, e.g. cuda:0,cuda:1 (replaces --workers)",
    )
    p.add_argument(
        "--pruner",
        default="auto",
        choices=PRUNERS,
        help="sha (successive halving), hyperband, median or none; auto (default): sha from "
        f"{AUTO_SHA_FROM} candidates on, else none. The base and the control always finish",
    )
    p.add_argument(
        "--heartbeat",
        type=positive_int,
        metavar="S",
        help="seconds between a running run's heartbeats on a PostgreSQL/RDB storage (default "
        "10); a run silent for 3 of them is retried by another worker",
    )
    p.add_argument(
        "--latency-runs",
        type=nonnegative_int,
        default=LATENCY_RUNS,
        metavar="N",
        help=f"time each model as trained N times at batch 1 after training, interleaved (CPU: "
        f"one thread), and report the median next to MACs (default {LATENCY_RUNS}; 0: skip)",
    )
    p.add_argument(
        "--match",
        default="macs",
        choices=MATCHES,
        help="match the uniform and random controls to the first candidate's macs (default) "
        "or params, as trained (params: the fair control for a params budget)",
    )
    p.add_argument(
        "--retime",
        action="store_true",
        help="time the models again even where the study holds quiet timings of them from "
        "this device (say, after a run on a busy machine)",
    )
    add_input_size(p, "training input size: C,H,W or C H W, or a side S (default: the search's)")
    p.add_argument("--out", metavar="results.csv", help="results CSV (default STUDY-verify.csv)")
    p.add_argument("--json", action="store_true", help="print the results as JSON, no progress")
    p.set_defaults(func=run)
