"""``widthsearch search``: explore constraint mixes with Optuna, every candidate in a study."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._args import parse_input_size, positive_float, positive_int, table


def _budget(mix: dict[str, Any], key: str) -> str:
    return "" if mix.get(key) is None else f"{mix[key]:.2f}"


def format_front(info: dict[str, Any]) -> str:
    """The ``front`` report of :func:`widthsearch.search.load_front` (or a search's result)."""
    base_w = info.get("base_widths") or []
    fixed = set(info.get("fixed_groups", []))
    rows = []
    for t in sorted(info["front"], key=lambda t: t["macs"]):
        mix = t["mix"]
        ratios = [
            w / b
            for i, (w, b) in enumerate(zip(t["widths"], base_w, strict=False))
            if i not in fixed
        ]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else ""
        rows.append(
            [
                t["number"],
                f"{t['log_synexp']:+.2f}",
                f"{t['params_ratio']:.3f}",
                f"{t['macs_ratio']:.3f}",
                mix.get("mode", ""),
                _budget(mix, "params_ratio"),
                _budget(mix, "macs_ratio"),
                f"{mix.get('min_width', 0):.2f}",
                f"{mix.get('max_width', 1.0):.2f}",
                mix.get("divisor", ""),
                spread,
            ]
        )
    header = [
        "trial",
        "log SynExp",
        "params",
        "MACs",
        "mode",
        "B_params",
        "B_MACs",
        "min_w",
        "max_w",
        "div",
        "widths/base",
    ]
    c, h, w = info["input_size"]
    lines = [
        f"study '{info['study']}': {info['model']} at {c}x{h}x{w}, {info['trials']} finished "
        f"trials, {len(info['front'])} on the Pareto front (max log SynExp, min params, min MACs)",
        f"base: params {info['base_params']:,}, MACs {info['base_macs']:,}; params and MACs "
        "below are ratios of the base, B_* the budget ratios the trial's mix set",
        "",
        table(header, rows, right={0, 1, 2, 3, 5, 6, 7, 8, 9}),
    ]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from ..search import run_search
    from ..study import StudyConfig, StudyConfigError, load_config

    if args.config:
        config = load_config(args.config)
        if args.model and args.model != config.model:
            raise StudyConfigError(f"{args.config} is for {config.model}, not {args.model}")
    elif args.model:
        config = StudyConfig(model=args.model)
    else:
        raise StudyConfigError("give a MODEL or --config STUDY.toml")
    config = config.with_options(
        trials=args.trials,
        sampler=args.sampler,
        seed=args.seed,
        study_name=args.study,
        input_size=args.input_size,
    )
    result = run_search(
        config,
        args.storage,
        workers=args.workers,
        timeout=args.timeout,
        progress=not args.json and sys.stderr.isatty(),
    )
    info = dict(result.report)
    info.update(storage=result.storage, new_trials=result.new_trials, seconds=result.seconds)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_front(info))
        rate = result.new_trials / result.seconds if result.seconds else 0.0
        print(
            f"\n{result.new_trials} new trials in {result.seconds:.1f} s ({rate:.1f}/s) on "
            f"{args.workers} worker(s); storage {result.storage}"
        )
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``search`` command."""
    from ..search import DEFAULT_STORAGE

    p = sub.add_parser(
        "search",
        help="explore constraint mixes with Optuna; keep every candidate in a study",
        description="Each trial samples a constraint mix (budget ratios, width bounds, divisor, "
        "mode), re-solves the SynExp program and rounds. Objectives: log SynExp (max), params "
        "and MACs (min). Re-running resumes the study; --trials counts all its finished trials.",
    )
    p.add_argument("model", nargs="?", help="timm model name (or give --config)")
    p.add_argument("--config", metavar="STUDY.toml", help="a study file with model and ranges")
    p.add_argument("--trials", type=positive_int, help="total finished trials (default 200)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help=f"SQLite path or URL, journal:PATH, or any SQLAlchemy URL such as "
        f"postgresql://... (default {DEFAULT_STORAGE})",
    )
    p.add_argument("--study", help="study name (default: the model name)")
    p.add_argument("--workers", type=positive_int, default=1, help="local processes (default 1)")
    p.add_argument("--timeout", type=positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--sampler", help="tpe (default), nsga2 or random")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        metavar="C,H,W",
        help="input size for MACs (default 3,224,224)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON, no progress")
    p.set_defaults(func=run)
