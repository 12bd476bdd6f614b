"""``widthsearch bench``: measured latency and memory of a model and its base, next to the
predicted ones."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from functools import partial
from typing import Any

from widthsearch.errors import WidthSearchError
from widthsearch.hardware import resolve_latency_model
from widthsearch.hardware.bench import MIN_RUNS, Counted, bench_widths
from widthsearch.hardware.timing import DTYPES
from widthsearch.models.widthfile import load_width_file
from widthsearch.solve import solved_widths
from widthsearch.solve.costs import COST_KINDS, CostKind, cost_models
from widthsearch.space.source import parse_model_kwargs
from widthsearch.space.width_space import WidthSpace

from ._args import (
    add_cost_args,
    add_model_kwargs,
    cost_settings,
    parse_input_size,
    positive_int,
    ratio,
    table,
)


def _figure(kind: CostKind, n: float | None) -> str:
    return "n/a" if n is None else kind.describe(n)


def _ratio(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else ratio(a / b)


def _counted(info: dict[str, Any]) -> list[CostKind]:
    """The counted cost kinds the result has figures for, in registry order."""
    return [k for k in COST_KINDS.values() if k.count is not None and k.key in info]


def format_bench(info: dict[str, Any]) -> str:
    """The ``bench`` report of a :meth:`BenchResult.to_dict` result."""
    c, h, w = info["input_size"]
    d = info["device"]
    threads = f", {d['threads']} thread(s)" if d["type"] == "cpu" else ""
    lines = [
        f"{info['model']} at {c}x{h}x{w} on {d['type']} ({d['name']}){threads}, torch "
        f"{d['torch']}, batch {d['batch_size']}, {d['dtype']}; {info['runs']} timed runs each, "
        "interleaved",
        "",
    ]

    counted = _counted(info)

    def row(name: str, prefix: str) -> list[str]:
        cells = [
            name,
            f"{info[prefix + 'predicted_ms']:.2f}",
            f"{info[prefix + 'measured_ms']:.2f}",
            f"{100 * info[prefix + 'spread']:.0f}%",
        ]
        for kind in counted:
            cells += [
                _figure(kind, info[prefix + kind.key]),
                _figure(kind, info[prefix + "measured_" + kind.key]),
            ]
        return [*cells, f"{info[prefix + 'params']:,}", f"{info[prefix + 'macs']:,}"]

    rows = []
    if not info["is_base"]:
        rows.append(row("model", ""))
    rows.append(row("base", "base_"))
    if not info["is_base"]:
        cells = ["ratio", ratio(info["predicted_ratio"]), ratio(info["measured_ratio"]), ""]
        for kind in counted:
            cells += [
                _ratio(info[kind.key], info[kind.base_key]),
                _ratio(info["measured_" + kind.key], info["base_measured_" + kind.key]),
            ]
        cells += [
            ratio(info["params"] / info["base_params"]),
            ratio(info["macs"] / info["base_macs"]),
        ]
        rows.append(cells)
    header = ["", "predicted ms", "measured ms", "noise"]
    for kind in counted:
        header += [kind.column, "counted"]
    header += ["params", "MACs"]
    explained = "; ".join(
        f"{kind.column}: {kind.explain.format(batch=d['batch_size'])}" for kind in counted
    )
    lines += [
        table(header, rows, right=set(range(1, len(header)))),
        "",
        "measured ms: median of the timed runs (inference, batch as above); noise: interquartile "
        f"range / median; {explained}; counted: on the realized model, on the CPU",
        info["latency_model"],
    ]
    if info["memory_note"]:
        lines.append(info["memory_note"])
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:

    if args.runs < MIN_RUNS:  # before any work
        raise WidthSearchError(f"--runs must be at least {MIN_RUNS} for a median, got {args.runs}")
    widths = None
    if args.target.endswith(".json"):
        wf = load_width_file(args.target)
        space = wf.space()
        widths = wf.widths
    else:
        kwargs = parse_model_kwargs(args.model_kwargs)
        space = WidthSpace.from_ref(args.target, input_size=args.input_size, **kwargs)

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    resolved = resolve_latency_model(
        space,
        profile=args.profile,
        device=args.device,
        threads=args.threads,
        batch_size=args.batch_size,
        dtype=args.dtype,
        solved_widths=solved_widths,
        progress=progress,
    )
    device = resolved.model.device
    settings = replace(cost_settings(args), batch_size=device.batch_size)
    counted = [
        Counted(
            kind.key,
            partial(_model_of, kind, space, settings),
            partial(_count_of, kind, space, settings),
        )
        for kind in COST_KINDS.values()
        if kind.count is not None
    ]
    result = bench_widths(
        space,
        widths,
        device,
        resolved.model,
        latency_note=resolved.note,
        runs=args.runs,
        counted=counted,
    )
    info = result.to_dict()
    print(json.dumps(info, indent=2) if args.json else format_bench(info))
    return 0


def _model_of(kind: CostKind, space: Any, settings: Any) -> Any:
    return cost_models(space, [kind.name], settings)[kind.name]


def _count_of(kind: CostKind, space: Any, settings: Any, model: Any) -> float:
    assert kind.count is not None
    return kind.count(model, space, settings)


def add_parser(sub: Any) -> None:
    """Register the ``bench`` command."""

    p = sub.add_parser(
        "bench",
        help="measure latency and memory of a model (or width file) and its base",
        description="Time the model at a width file's widths and its base in one interleaved "
        "run (median of the timed runs after warm-up, threads pinned), count the activation "
        "bytes a training step saves, and print them next to the predicted ones. The latency "
        "model comes from --profile, or from a cached quick profile (made if missing, about a "
        "minute).",
    )
    p.add_argument(
        "target",
        metavar="MODEL|WIDTHS.json",
        help="a width file, or a model: timm name, FILE.py:NAME or package.module:NAME",
    )
    add_model_kwargs(p)
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        default=(3, 224, 224),
        metavar="C,H,W",
        help="for a model name (a width file has its own; default 3,224,224)",
    )
    add_cost_args(p)
    p.add_argument("--dtype", choices=DTYPES, help="float32 (default)")
    p.add_argument(
        "--runs",
        type=positive_int,
        default=30,
        metavar="N",
        help=f"timed runs per model (default 30, at least {MIN_RUNS})",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
