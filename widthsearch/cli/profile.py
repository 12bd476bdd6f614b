"""``widthsearch profile``: measure a device and fit its latency model."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from widthsearch.hardware import (
    DEFAULT_MODELS,
    DEFAULT_SAMPLES,
    QUICK_SECONDS,
    Profile,
    cache_path,
    make_profile,
)
from widthsearch.hardware.timing import DEVICES, DTYPES, current_device
from widthsearch.solve import solved_widths
from widthsearch.space.source import parse_model_kwargs
from widthsearch.space.width_space import WidthSpace

from ._args import add_model_kwargs, parse_input_size, positive_float, positive_int, table


def format_profile(info: dict[str, Any], written: list[str]) -> str:
    """The ``profile`` report of a :meth:`Profile.to_dict` result."""
    d = info["device"]
    threads = f", {d['threads']} thread(s)" if d["type"] == "cpu" else ""
    lines = [
        f"latency profile of {d['type']} ({d['name']}){threads}, torch {d['torch']}, "
        f"batch {d['batch_size']}, {d['dtype']}",
        "",
    ]
    rows = []
    for f in info["fits"]:
        c, h, w = f["input_size"]
        samples = f["samples"]
        base_ms = samples[0]["ms"]
        spreads = sorted(s["spread"] for s in samples)
        e = f["errors"]
        rows.append(
            [
                f["model"],
                f"{c}x{h}x{w}",
                len(samples),
                f"{base_ms:.2f}",
                f"{min(s['ms'] for s in samples):.2f}-{max(s['ms'] for s in samples):.2f}",
                f"{100 * e['median_abs_error']:.1f}%",
                f"{100 * e['cv_median_abs_error']:.1f}%",
                f"{100 * spreads[len(spreads) // 2]:.0f}%",
                f"{f['seconds']:.0f}",
            ]
        )
    header = ["model", "input", "widths", "base ms", "range ms", "error", "cv error", "noise", "s"]
    lines.append(table(header, rows, right={2, 3, 4, 5, 6, 7, 8}))
    pooled = info["pooled_errors"]
    lines += [
        "",
        "error: median |predicted / measured - 1| over the width vectors timed (cv: 5-fold "
        "cross-validated); noise: median interquartile range / median of a vector's runs",
    ]
    if len(info["fits"]) > 1:
        lines.append(
            f"pooled fit over all models (used for models the profile has no fit for): median "
            f"error {100 * pooled['median_abs_error']:.1f}%"
        )
    lines += ["", *[f"wrote {p}" for p in written]]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:

    device = current_device(
        args.device, threads=args.threads, batch_size=args.batch_size, dtype=args.dtype
    )
    names = args.models or list(DEFAULT_MODELS)
    kwargs = parse_model_kwargs(args.model_kwargs)
    spaces = [WidthSpace.from_ref(n, input_size=args.input_size, **kwargs) for n in names]

    def progress(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr, flush=True)

    profile = make_profile(
        spaces,
        device,
        solved_widths=solved_widths,
        samples=args.samples,
        seconds=args.seconds,
        progress=progress,
    )
    written = []
    if args.output:
        profile.save(args.output)
        written.append(args.output)
    else:  # one cache entry per model: reconfig and search find them without --profile
        for space, fit in zip(spaces, profile.fits, strict=True):
            path = cache_path(space, device)
            path.parent.mkdir(parents=True, exist_ok=True)
            single = Profile(device, (fit,), fit.coefficients, fit.errors, profile.created)
            single.save(path)
            written.append(str(path))
    info = profile.to_dict()
    if args.json:
        info["written"] = written
        print(json.dumps(info, indent=2))
    else:
        print(format_profile(info, written))
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``profile`` command."""

    p = sub.add_parser(
        "profile",
        help="measure a device's latency at many widths and fit its latency model",
        description="Time each model realized at random width vectors (interleaved, median of "
        "several runs, threads pinned) and fit the latency model, a posynomial of the widths "
        "(MACs by layer kind, memory traffic, weights, a per-op overhead), by non-negative "
        "least squares. Without -o the fits go to the cache that reconfig and search read when "
        "no --profile is given.",
    )
    p.add_argument(
        "models",
        nargs="*",
        metavar="MODEL",
        help=f"models to measure: timm names, FILE.py:NAME or package.module:NAME (default: "
        f"{', '.join(DEFAULT_MODELS)})",
    )
    add_model_kwargs(p)
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        default=(3, 224, 224),
        metavar="C,H,W",
        help="input size (default 3,224,224)",
    )
    p.add_argument("--device", choices=DEVICES, default="cpu", help="cpu (default) or cuda")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per forward (1)")
    p.add_argument(
        "--threads", type=positive_int, help="CPU threads, pinned while timing (default: torch's)"
    )
    p.add_argument("--dtype", choices=DTYPES, default="float32", help="float32 (default)")
    p.add_argument(
        "--samples",
        type=positive_int,
        default=DEFAULT_SAMPLES,
        metavar="N",
        help=f"width vectors per model, the base included (default {DEFAULT_SAMPLES})",
    )
    p.add_argument(
        "--seconds",
        type=positive_float,
        default=QUICK_SECONDS,
        metavar="S",
        help=f"time to aim at per model (default {QUICK_SECONDS:g})",
    )
    p.add_argument("-o", "--output", metavar="PROFILE.json", help="write the profile here")
    p.add_argument("--json", action="store_true", help="print the profile as JSON")
    p.set_defaults(func=run)
