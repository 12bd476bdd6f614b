"""``widthsearch bench``: measured latency and memory of a model and its base, next to the
predicted ones."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from widthsearch.errors import WidthSearchError
from widthsearch.hardware import resolve_latency_model
from widthsearch.hardware.bench import MIN_RUNS, bench_widths
from widthsearch.hardware.timing import DEVICES, DTYPES
from widthsearch.models.widthfile import load_width_file
from widthsearch.solve import solved_widths
from widthsearch.space.source import parse_model_kwargs
from widthsearch.space.width_space import WidthSpace

from ._args import add_model_kwargs, parse_input_size, positive_int, ratio, table


def _mb(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 1e6:,.1f} MB"


def _ratio(a: float | None, b: float | None) -> str:
    return "" if a is None or b is None else ratio(a / b)


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

    def row(name: str, prefix: str) -> list[str]:
        return [
            name,
            f"{info[prefix + 'predicted_ms']:.2f}",
            f"{info[prefix + 'measured_ms']:.2f}",
            f"{100 * info[prefix + 'spread']:.0f}%",
            _mb(info[prefix + "memory_bytes"]),
            _mb(info[prefix + "measured_memory_bytes"]),
            f"{info[prefix + 'params']:,}",
            f"{info[prefix + 'macs']:,}",
        ]

    rows = []
    if not info["is_base"]:
        rows.append(row("model", ""))
    rows.append(row("base", "base_"))
    if not info["is_base"]:
        rows.append(
            [
                "ratio",
                ratio(info["predicted_ratio"]),
                ratio(info["measured_ratio"]),
                "",
                _ratio(info["memory_bytes"], info["base_memory_bytes"]),
                _ratio(info["measured_memory_bytes"], info["base_measured_memory_bytes"]),
                ratio(info["params"] / info["base_params"]),
                ratio(info["macs"] / info["base_macs"]),
            ]
        )
    header = [
        "",
        "predicted ms",
        "measured ms",
        "noise",
        "train memory",
        "measured",
        "params",
        "MACs",
    ]
    lines += [
        table(header, rows, right={1, 2, 3, 4, 5, 6, 7}),
        "",
        "measured ms: median of the timed runs (inference, batch as above); noise: interquartile "
        "range / median; train memory: activation bytes a training step saves for backward at "
        "this batch (predicted: the exact model; measured: what autograd saves, on the CPU)",
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
    result = bench_widths(
        space,
        widths,
        resolved.model.device,
        resolved.model,
        latency_note=resolved.note,
        runs=args.runs,
    )
    info = result.to_dict()
    print(json.dumps(info, indent=2) if args.json else format_bench(info))
    return 0


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
    p.add_argument("--device", choices=DEVICES, default="cpu", help="cpu (default) or cuda")
    p.add_argument("--batch-size", type=positive_int, help="images per forward (default 1)")
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    p.add_argument("--dtype", choices=DTYPES, help="float32 (default)")
    p.add_argument("--profile", metavar="PROFILE.json", help="latency profile of this device")
    p.add_argument(
        "--runs",
        type=positive_int,
        default=30,
        metavar="N",
        help=f"timed runs per model (default 30, at least {MIN_RUNS})",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
