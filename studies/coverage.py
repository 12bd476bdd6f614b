"""Coverage study: how much of timm's CNN zoo widthsearch takes end to end, next to Torch-Pruning.

For every convolutional family of timm (model-name families within timm's CNN modules, up to
three of the smallest models each, at a small input), each model goes through the stages a
user goes through, each stage only if the one before worked:

``parse``     ``WidthSpace.from_timm`` accepts the model (``refused``: a one-line
              ``WidthSearchError``; ``crash``: any other exception, a bug)
``cost``      predicted params and MACs equal the counted model (numel, FlopCounterMode / 2)
``realize``   random widths below and above base: realize, exact counts, forward + backward
``reconfig``  a same-MACs PreConfig solve (``reconfig --same-flops``), realized, exact counts
``export``    the width file exported, the module imported, ``timm.create_model`` of its
              entrypoint counted exactly

and, independently, ``tp``: Torch-Pruning's ``BasePruner`` (magnitude importance, 50% of the
channels, classifier ignored) prunes the base model into one that runs (within 120 s). Its
result does not depend on widthsearch: ``--tp-from`` takes it from an earlier table of the same
timm and Torch-Pruning versions instead of running it again (about half the study's time).

Each model runs in a worker subprocess (one torch thread) with a per-model time limit; a worker
that overruns is killed and the model recorded as ``timeout``. Results go to a CSV (one row per
model, a reason per failed stage) and a Markdown summary with totals and, per mechanism, the
models it blocks.

    nice uv run python studies/coverage.py [--per-family 3] [--size 64] [--timeout 300]
        [--out studies/coverage] [--families resnet,ghostnet] [--limit N]
        [--tp-from studies/coverage.csv]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

# timm modules whose models are convolutional networks (hybrids with attention excluded below)
CNN_MODULES = [
    "byobnet",
    "convmixer",
    "convnext",
    "cpubone",
    "cspnet",
    "cspnext",
    "densenet",
    "dla",
    "dpn",
    "efficientnet",
    "fasternet",
    "ghostnet",
    "hardcorenas",
    "hgnet",
    "hrnet",
    "inception_next",
    "inception_resnet_v2",
    "inception_v3",
    "inception_v4",
    "lcnetv2",
    "mambaout",
    "metaformer",
    "mobilenetv3",
    "nasnet",
    "nfnet",
    "pnasnet",
    "rdnet",
    "regnet",
    "repghost",
    "repvit",
    "res2net",
    "resnest",
    "resnet",
    "resnetv2",
    "rexnet",
    "selecsls",
    "senet",
    "sknet",
    "starnet",
    "tresnet",
    "vgg",
    "vovnet",
    "xception",
    "xception_aligned",
]
# names in those modules that are attention hybrids, not CNNs
NOT_CNN = re.compile(r"hybrid|^caformer|_attn|bot|halo|lambda|sebotnet|gcresnext.*attn")
WEIGHT_PREFIXES = {"tf", "tv", "gluon", "legacy", "ssl", "swsl", "ig", "fb", "test"}
STAGES = ("parse", "cost", "realize", "reconfig", "export")
FIELDS = ["family", "model", "params", *STAGES, "tp", "reason", "tp_reason", "seconds"]


def family(name: str) -> str:
    """The model family a name belongs to: ``resnet50d`` -> ``resnet``, ``mobilenetv2_100`` ->
    ``mobilenetv2``, ``tf_efficientnet_b0`` -> ``tf_efficientnet``."""
    tokens = name.split("_")
    prefix = ""
    if tokens[0] in WEIGHT_PREFIXES and len(tokens) > 1:
        prefix, tokens = tokens[0] + "_", tokens[1:]
    token = tokens[0]
    if not re.search(r"v\d+$", token):
        token = re.sub(r"\d+[a-z]?$", "", token) or token
    return prefix + token


# ------------------------------------------------------------------------------ selection
def select(per_family: int, families: set[str] | None) -> list[tuple[str, str, int]]:
    """``(family, model, params)`` for the smallest ``per_family`` models of each family."""
    import timm
    import torch

    by_family: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for module in CNN_MODULES:
        for name in timm.list_models(module=module):
            fam = family(name)
            if NOT_CNN.search(name) or (families and fam not in families):
                continue
            try:
                with torch.device("meta"):
                    model = timm.create_model(name)
                n = sum(p.numel() for p in model.parameters())
            except Exception:  # noqa: BLE001 - some models cannot be built on meta: size unknown
                n = 10**12
            by_family[fam].append((n, name))
    picked = []
    for fam in sorted(by_family):
        for n, name in sorted(by_family[fam])[:per_family]:
            picked.append((fam, name, n))
    return picked


# ------------------------------------------------------------------------------ one model
def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def _count(model, size) -> tuple[int, int]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *size))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def _random_widths(space, seed: int) -> list[int]:
    import random

    rng = random.Random(seed)
    return [
        g.width
        if g.fixed
        else g.multiple_of * max(1, round(g.width * rng.uniform(0.25, 2.0) / g.multiple_of))
        for g in space.groups
    ]


def run_one(
    name: str, size: tuple[int, int, int], workdir: Path, index: int, tp: dict | None = None
) -> dict:
    """Every stage for ``name``; a stage that raises records its reason and stops the rest.
    ``tp``: Torch-Pruning's ``(tp, tp_reason)`` by model, from an earlier table."""
    import importlib.util

    import timm
    import torch

    from widthsearch import WidthSpace
    from widthsearch.errors import WidthSearchError
    from widthsearch.models.export import export
    from widthsearch.models.widthfile import save_width_file
    from widthsearch.solve.reconfigure import reconfigure

    row: dict = {"model": name, **{s: "-" for s in (*STAGES, "tp")}, "reason": "", "tp_reason": ""}
    start = time.perf_counter()
    stage = "parse"
    try:
        try:
            space = WidthSpace.from_timm(name, input_size=size)
        except WidthSearchError as exc:
            row["parse"], row["reason"] = "refused", _first_line(exc)
            raise _Stop from None
        row["parse"] = "ok"

        stage = "cost"
        counted = _count(timm.create_model(name), size)
        if counted != (space.params(), space.macs()):
            raise AssertionError(f"counted {counted}, predicted {(space.params(), space.macs())}")
        row[stage] = "ok"

        stage = "realize"
        widths = _random_widths(space, index)
        model = space.realize(widths)
        if _count(model, size) != (space.params(widths), space.macs(widths)):
            raise AssertionError("realized counts differ from the prediction")
        model.train()
        out = model(torch.randn(2, *size))
        (out if isinstance(out, torch.Tensor) else out[0]).square().mean().backward()
        row[stage] = "ok"

        stage = "reconfig"
        result = reconfigure(space, mode="preconfig", macs=space.macs(), baselines=())
        if _count(space.realize(result.widths), size) != (result.params, result.macs):
            raise AssertionError("reconfigured counts differ from the prediction")
        row[stage] = "ok"

        stage = "export"
        path = workdir / f"w{index}.json"
        save_width_file(path, result, space)
        module = f"cov_m{index}"
        entry = export(path, workdir / f"{module}.py", name=f"cov_{index}_ws")
        spec = importlib.util.spec_from_file_location(module, workdir / f"{module}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[module] = mod
        spec.loader.exec_module(mod)
        if _count(timm.create_model(entry), size) != (result.params, result.macs):
            raise AssertionError("exported model counts differ from the prediction")
        row[stage] = "ok"
    except _Stop:
        pass
    except Exception as exc:  # noqa: BLE001 - the study records every failure
        row[stage] = "crash" if stage == "parse" else "fail"
        row["reason"] = _first_line(exc)
    if tp and name in tp:
        row["tp"], row["tp_reason"] = tp[name]
    else:
        row["tp"], row["tp_reason"] = _torch_pruning(name, size)
    row["seconds"] = round(time.perf_counter() - start, 1)
    return row


class _Stop(Exception):
    pass


class _TimeUp(Exception):
    pass


def _time_up(signum, frame):
    raise _TimeUp


def _torch_pruning(name: str, size, limit: int = 120) -> tuple[str, str]:
    """Torch-Pruning's BasePruner at 50% of the channels: ``ok`` if the pruned model runs.

    Torch-Pruning's index mapping takes minutes on some models (ECA attention: 450 s for
    ecaresnet26t on one thread), so it gets ``limit`` seconds and a ``timeout`` after that.
    """
    import signal

    import timm
    import torch
    import torch_pruning as tp

    signal.signal(signal.SIGALRM, _time_up)
    signal.alarm(limit)
    try:
        model = timm.create_model(name).eval()
        x = torch.zeros(1, *size)
        head = model.get_classifier() if hasattr(model, "get_classifier") else None
        ignored = [head] if isinstance(head, torch.nn.Module) else []
        pruner = tp.pruner.BasePruner(
            model,
            x,
            importance=tp.importance.MagnitudeImportance(p=2),
            pruning_ratio=0.5,
            ignored_layers=ignored,
        )
        pruner.step()
        with torch.no_grad():
            model(torch.randn(1, *size))
        return "ok", ""
    except _TimeUp:
        return "timeout", f"more than {limit} s"
    except Exception as exc:  # noqa: BLE001 - recorded
        return "fail", _first_line(exc)
    finally:
        signal.alarm(0)


def worker(out: Path, names: list[str], size, first_index: int, tp_from: str = "") -> None:
    """Run ``names`` in order, one JSON line each to ``out`` (appended, flushed)."""
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    tp = _earlier_tp(Path(tp_from), size) if tp_from else None
    with tempfile.TemporaryDirectory() as tmp, out.open("a") as f:
        sys.path.insert(0, tmp)
        for i, name in enumerate(names):
            row = run_one(name, size, Path(tmp), first_index + i, tp)
            f.write(json.dumps(row) + "\n")
            f.flush()


def _earlier_tp(path: Path, size) -> dict[str, tuple[str, str]]:
    """Torch-Pruning's results by model from an earlier CSV of this study, checked to be of the
    same input and timm version, and Torch-Pruning version where its Markdown summary names it
    (older summaries do not: check that the lock file has not changed since)."""
    import timm
    import torch_pruning

    head = path.with_suffix(".md").read_text().split("\n", 4)[2]
    want = f"input 3x{size[1]}x{size[2]}, timm {timm.__version__}"
    tp = f"Torch-Pruning {torch_pruning.__version__}"
    if want not in head or ("Torch-Pruning" in head and tp not in head):
        raise SystemExit(f"--tp-from {path}: not {want}, {tp}")
    with path.open() as f:
        return {r["model"]: (r["tp"], r["tp_reason"]) for r in csv.DictReader(f)}


# ------------------------------------------------------------------------------ driver
def drive(picked, size, timeout: float, out_jsonl: Path, tp_from: str = "") -> list[dict]:
    """Run every model in worker processes, restarting a worker that overruns the limit."""
    out_jsonl.touch()  # rows already there are from an interrupted run: resumed
    done = {row["model"]: row for row in _read_rows(out_jsonl)}
    index = {name: i for i, (_, name, _) in enumerate(picked)}
    todo = [name for _, name, _ in picked if name not in done]
    while todo:
        cmd = [sys.executable, __file__, "--worker", str(out_jsonl), "--size", str(size[1])]
        cmd += ["--first-index", str(index[todo[0]]), "--tp-from", tp_from, *todo]
        err = out_jsonl.with_suffix(".stderr")
        with err.open("w") as stderr:
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
        seen, last = len(done), time.monotonic()
        while proc.poll() is None:
            time.sleep(2)
            rows = _read_rows(out_jsonl)
            if len(rows) > seen:
                for row in rows:
                    done[row["model"]] = row
                seen, last = len(rows), time.monotonic()
                print(f"[{len(done)}/{len(picked)}] {rows[-1]['model']}", flush=True)
            elif time.monotonic() - last > timeout:
                proc.kill()
                proc.wait()
                break
        done.update((row["model"], row) for row in _read_rows(out_jsonl))
        todo = [name for _, name, _ in picked if name not in done]
        if todo and (proc.returncode != 0 or proc.returncode is None):
            stuck = todo.pop(0)  # the model the worker was on when it died or overran
            why = "timeout" if proc.returncode in (-9, None) else f"worker died: {proc.returncode}"
            row = {"model": stuck, **{s: "-" for s in (*STAGES, "tp")}, "tp_reason": ""}
            tail = err.read_text()[-300:].strip().replace("\n", " ")
            row.update(parse=why, reason=why if why == "timeout" else tail or why)
            with out_jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[stuck] = row
        elif todo and proc.returncode == 0:
            break  # the worker ended cleanly without finishing: avoid looping forever
    rows = []
    for fam, name, n in picked:
        row = dict(done[name])
        row.update(family=fam, params=n)
        rows.append(row)
    return rows


def _read_rows(path: Path) -> list[dict]:
    """The complete JSON lines of ``path`` (a line being written is left for later)."""
    text = path.read_text()
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines() if x]


def mechanism(reason: str) -> str:
    """A short name for the mechanism behind a refusal or failure."""
    by_op = [  # the op the message names
        (r"'torch\.(?:\w+\.)*(split|chunk|narrow|unbind|tensor_split)'", "channel split / slice"),
        (r"'torch\.stack'", "branches stacked on a new dim (SelectiveKernel)"),
        (r"'torch\.[\w.]*conv1d'", "Conv1d across channels (ECA)"),
        (r"'torch\.[\w.]*(matmul|einsum|bmm|attention)'", "attention / matmul"),
    ]
    for pattern, name in by_op:
        if re.search(pattern, reason.lower()):
            return name
    low = re.sub(r"'[^']*'|\([A-Z]\w*\)", "", reason).lower()  # without module/class names
    rules = [
        (r"slicing a channel tensor", "channel split / slice"),
        (r"weight is computed|weight standardization", "computed weights (std conv, blur)"),
        (r"channel multiplier", "depthwise conv with a multiplier"),
        (r"mixes the channel dim", "reshape that mixes channels (radix, EvoNorm, attention pool)"),
        (r"concatenated differently", "segments recombined in another split"),
        (r"used twice|runs twice", "weight sharing / reuse"),
        (r"failed on an input of shape", "input too small for the model"),
        (r"cannot resize module", "module type not resizable"),
        (r"realized at other widths", "breaks at other widths (parse-time check)"),
        (r"timeout", "timeout"),
    ]
    for pattern, name in rules:
        if re.search(pattern, low):
            return name
    return "other: " + reason[:60]


def summarize(rows: list[dict], size, tp_from: str = "") -> str:
    n = len(rows)
    fams = sorted({r["family"] for r in rows})
    ok = {s: sum(r[s] == "ok" for r in rows) for s in (*STAGES, "tp")}
    end_to_end = sum(all(r[s] == "ok" for s in STAGES) for r in rows)
    late = [r for r in rows if r["parse"] == "ok" and not all(r[s] == "ok" for s in STAGES)]
    lines = [
        "# Coverage of timm's CNN families",
        "",
        f"`studies/coverage.py`: {n} models in {len(fams)} families (up to three of the smallest "
        f"per family), input 3x{size[1]}x{size[2]}, timm {_timm_version()}, "
        f"Torch-Pruning {_tp_version()}; "
        f"{sum(float(r.get('seconds') or 0) for r in rows) / 60:.0f} min of worker time (one "
        "thread each) on a shared 2-core machine.",
        "",
        "| stage | models | share |",
        "|---|---|---|",
    ]
    for s in STAGES:
        lines.append(f"| widthsearch {s} | {ok[s]} | {ok[s] / n:.0%} |")
    lines.append(f"| widthsearch end to end | {end_to_end} | {end_to_end / n:.0%} |")
    lines.append(f"| Torch-Pruning BasePruner (50%, runs) | {ok['tp']} | {ok['tp'] / n:.0%} |")
    slow = sum(r["tp"] == "timeout" for r in rows)
    lines += ["", f"Torch-Pruning ran out of its 120 s on {slow} models (counted as not pruned)."]
    if tp_from:
        lines[-1] += f" Its results are taken from the previous run of this study ({tp_from})."
    lines += ["", f"Parsed but failed a later stage: {len(late)}."]
    for r in late:
        bad = next(s for s in STAGES if r[s] != "ok")
        lines.append(f"- {r['model']}: {bad}: {r['reason']}")
    blocked: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        if r["parse"] != "ok":
            blocked[mechanism(r["reason"])].append(r["model"])
    lines += ["", "## What blocks the models widthsearch refuses", ""]
    lines += [
        "| mechanism | models | families | of which Torch-Pruning prunes |",
        "|---|---|---|---|",
    ]
    by_name = {r["model"]: r for r in rows}
    for mech, models in sorted(blocked.items(), key=lambda kv: -len(kv[1])):
        fam = sorted({by_name[m]["family"] for m in models})
        tp_ok = sum(by_name[m]["tp"] == "ok" for m in models)
        lines.append(f"| {mech} | {len(models)} | {', '.join(fam)} | {tp_ok} |")
    both = Counter((r["parse"] == "ok", r["tp"] == "ok") for r in rows)
    lines += [
        "",
        f"Both handle {both[(True, True)]}; only widthsearch {both[(True, False)]}; only "
        f"Torch-Pruning {both[(False, True)]}; neither {both[(False, False)]}.",
        "",
        "## Every model",
        "",
        "| family | model | params | " + " | ".join(STAGES) + " | tp | reason |",
        "|---|---|---|" + "---|" * len(STAGES) + "---|---|",
    ]
    for r in rows:
        reason = r["reason"] or (f"tp: {r['tp_reason']}" if r["tp_reason"] else "")
        reason = reason.replace("|", "/")[:140]
        cells = " | ".join(r[s] for s in STAGES)
        lines.append(
            f"| {r['family']} | {r['model']} | {r['params'] / 1e6:.1f}M | {cells} | {r['tp']} | "
            f"{reason} |"
        )
    return "\n".join(lines) + "\n"


def _timm_version() -> str:
    import timm

    return timm.__version__


def _tp_version() -> str:
    import torch_pruning

    return torch_pruning.__version__


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-family", type=int, default=3)
    parser.add_argument("--size", type=int, default=64, help="input H = W (3 channels)")
    parser.add_argument("--timeout", type=float, default=400, help="seconds per model")
    parser.add_argument("--out", default="studies/coverage", help="writes OUT.csv and OUT.md")
    parser.add_argument("--families", default="", help="comma-separated families only")
    parser.add_argument("--limit", type=int, default=0, help="first N models only (a dry run)")
    parser.add_argument("--summarize", action="store_true", help="rewrite OUT.md from OUT.csv")
    parser.add_argument(
        "--tp-from", default="", help="Torch-Pruning's results from this earlier CSV (and its .md)"
    )
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--first-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    size = (3, args.size, args.size)
    if args.worker:
        worker(Path(args.worker), args.names, size, args.first_index, args.tp_from)
        return
    out = Path(args.out)
    if args.summarize:
        with out.with_suffix(".csv").open() as f:
            rows = [{**r, "params": int(r["params"])} for r in csv.DictReader(f)]
        out.with_suffix(".md").write_text(summarize(rows, size))
        return
    start = time.perf_counter()
    families = set(filter(None, args.families.split(","))) or None
    picked = select(args.per_family, families)
    if args.limit:
        picked = picked[: args.limit]
    print(f"{len(picked)} models in {len({f for f, _, _ in picked})} families", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.tp_from:  # the earlier table may be the one this run replaces: read it first
        _earlier_tp(Path(args.tp_from), size)
    rows = drive(picked, size, args.timeout, out.with_suffix(".jsonl"), args.tp_from)
    with out.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    out.with_suffix(".md").write_text(summarize(rows, size, args.tp_from))
    print(f"{(time.perf_counter() - start) / 60:.0f} min in all")
    for suffix in (".jsonl", ".stderr"):  # the resume state of an interrupted run
        out.with_suffix(suffix).unlink(missing_ok=True)
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
