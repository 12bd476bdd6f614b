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
    """The ``front`` report of :func:`widthsearch.search.load_front` (or a search's result):
    its thinned front (``shown``), cheapest MACs first."""
    from ..search import shown_front

    base_w = info.get("base_widths") or []
    fixed = set(info.get("fixed_groups", []))
    shown = shown_front(info)
    rows = []
    for t in shown:
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
    kwargs = "".join(f", {k} {v}" for k, v in (info.get("timm_kwargs") or {}).items())
    n_front, eps = len(info["front"]), info.get("eps", 0)
    thinned = (
        f"{len(shown)} shown: every other one has a shown point within {1 + eps:g}x its params "
        "and MACs with at least its log SynExp (--all: every point; --json: the whole front)"
        if len(shown) < n_front
        else "all shown"
    )
    lines = [
        f"study '{info['study']}': {info['model']} at {c}x{h}x{w}{kwargs}, {info['trials']} "
        f"finished trials, {n_front} on the Pareto front (max log SynExp, min params, min MACs); "
        f"{thinned}",
        f"base: params {info['base_params']:,}, MACs {info['base_macs']:,}; params and MACs "
        "below are ratios of the base, B_* the budget ratios the trial's mix set",
        "",
        table(header, rows, right={0, 1, 2, 3, 5, 6, 7, 8, 9}),
    ]
    return "\n".join(lines)


def _timm_kwargs(args: argparse.Namespace, config: Any) -> dict[str, Any]:
    """The study's timm kwargs with --num-classes and --in-chans applied."""
    kwargs = dict(config.timm_kwargs)
    if args.num_classes is not None:
        kwargs["num_classes"] = args.num_classes
    if args.in_chans is not None:
        kwargs["in_chans"] = args.in_chans
    return kwargs


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
    kwargs = _timm_kwargs(args, config)
    input_size = args.input_size or config.input_size
    if "in_chans" in kwargs:  # the input's channels are the model's
        input_size = (kwargs["in_chans"], *input_size[1:])
    config = config.with_options(
        trials=args.trials,
        sampler=args.sampler,
        seed=args.seed,
        study_name=args.study,
        input_size=input_size,
        timm_kwargs=kwargs,
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
        print(
            f"\n{result.new_trials} new trials in {result.seconds:.1f} s (start-up included) on "
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
        "and MACs (min). Re-running resumes the study; --trials counts all its finished trials. "
        "A study keeps its settings (model, input size, classes, ranges, sampler, seed): a "
        "re-run with other ones is refused, nothing changed. Ctrl-C stops after the running "
        "trial and stores no half-done one.",
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
    p.add_argument(
        "--sampler",
        help="qmc (default: scrambled Sobol points over the mix ranges), tpe, nsga2 or random; "
        "a stored study keeps its own",
    )
    p.add_argument("--seed", type=int, help="sampler seed (default: the study's, or a new one)")
    p.add_argument(
        "--num-classes",
        type=positive_int,
        metavar="N",
        help="classifier classes (timm num_classes; default the model's, 1000 for ImageNet)",
    )
    p.add_argument(
        "--in-chans",
        type=positive_int,
        metavar="C",
        help="input channels (timm in_chans; default 3); the input size's C follows it",
    )
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        metavar="C,H,W",
        help="input size for MACs (default 3,224,224)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON, no progress")
    p.set_defaults(func=run)
