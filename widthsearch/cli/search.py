"""``widthsearch search``: explore constraint mixes with Optuna, every candidate in a study."""

from __future__ import annotations

import argparse
import json
from typing import Any

from widthsearch.errors import StudyConfigError, WidthSearchError
from widthsearch.report.truth import truth_line
from widthsearch.search.front import shown_front
from widthsearch.search.run import run_search
from widthsearch.search.settings import Ranges
from widthsearch.solve.costs import COST_KINDS
from widthsearch.solve.program import MODES
from widthsearch.storage import DEFAULT_STORAGE
from widthsearch.studyfile import StudyConfig, load_config

from ._args import (
    add_budget_range_args,
    add_cost_args,
    add_input_size,
    add_objective_args,
    add_timm_kwargs,
    cost_settings,
    dest,
    positive_float,
    positive_int,
    table,
    timm_kwargs,
)


def _budget(mix: dict[str, Any], key: str) -> str:
    return "" if mix.get(key) is None else f"{mix[key]:.2f}"


def format_front(info: dict[str, Any]) -> str:
    """The ``front`` report of :func:`widthsearch.search.load_front` (or a search's result):
    its thinned front (``shown``), cheapest MACs first."""

    base_w = info.get("base_widths") or []
    fixed = set(info.get("fixed_groups", []))
    latency = "latency_ms" in info.get("objectives", [])
    truth = info.get("truth")
    shown = shown_front(info)
    extra = [  # modelled costs the study has figures of: latency, memory, ...
        k
        for k in COST_KINDS.values()
        if k.build is not None and info.get(k.base_key) and k.name in _shown_costs(info, latency)
    ]
    rows = []
    for t in shown:
        mix = t["mix"]
        ratios = [
            w / b
            for i, (w, b) in enumerate(zip(t["widths"], base_w, strict=False))
            if i not in fixed
        ]
        spread = f"{min(ratios):.2f}-{max(ratios):.2f}x" if ratios else ""
        row = [
            t["number"],
            f"{t['log_synexp']:+.2f}",
            f"{t['params_ratio']:.3f}",
            f"{t['macs_ratio']:.3f}",
        ]
        row += ["" if t.get(k.ratio_key) is None else f"{t[k.ratio_key]:.3f}" for k in extra]
        row += [mix.get("mode", ""), _budget(mix, "params_ratio"), _budget(mix, "macs_ratio")]
        row += [_budget(mix, k.ratio_key) for k in extra]
        row += [
            f"{mix.get('min_width', 0):.2f}",
            f"{mix.get('max_width', 1.0):.2f}",
            mix.get("divisor", ""),
            spread,
        ]
        if truth:
            row += [_acc(t.get("truth_acc")), _acc(t.get("truth_oracle"))]
        rows.append(row)
    header = ["trial", "log SynExp", "params", "MACs", *(k.column for k in extra)]
    header += ["mode", "B_params", "B_MACs", *(f"B_{k.short or k.name}" for k in extra)]
    header += ["min_w", "max_w", "div", "widths/base"]
    header += ["table acc", "table best"] * bool(truth)
    c, h, w = info["input_size"]
    objectives = "max log SynExp, min params, min MACs" + ", min latency" * latency
    base = f"base: params {info['base_params']:,}, MACs {info['base_macs']:,}"
    if latency:
        base += f", predicted latency {info['base_latency_ms']:.2f} ms"
    costs = "params, MACs and latency" if latency else "params and MACs"
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
        f"finished trials, {n_front} on the Pareto front ({objectives}); {thinned}",
        f"{base}; {costs} below are ratios of the base, B_* the budget ratios the trial's mix set",
    ]
    if latency and info.get("latency_model"):
        lines.append(info["latency_model"])
    if truth:
        lines.append(
            truth_line(truth) + " (table acc: the trial's entry, '-' off the grid; table best: "
            "the best entry within its params and MACs)"
        )
    right = {i for i, name in enumerate(header) if name not in ("mode", "widths/base")}
    lines += ["", table(header, rows, right=right)]
    return "\n".join(lines)


def _shown_costs(info: dict[str, Any], latency: bool) -> set[str]:
    """The modelled costs the front shows: latency where it is an axis, and every cost with a
    budget range."""
    ranged = {k for k, r in (info.get("ranges") or {}).items() if r}
    return ranged | ({"latency"} if latency else set())


def _acc(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _range(text: str, what: str, *, free: bool = False) -> tuple[float, float] | None:
    """``LO,HI`` (or one number) as a range of ratios of the base; ``none`` (where ``free``)
    leaves that cost unconstrained, as ``false`` does in a study file."""

    if free and text.strip().lower() in ("none", "false", "free"):
        return None
    try:
        parts = [float(p) for p in text.split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not 0 < parts[0] <= parts[1] < float("inf"):
        raise StudyConfigError(
            f"--{what} must be LOW,HIGH ratios of the base with 0 < LOW <= HIGH (or one ratio"
            + ("; none: unconstrained" if free else "")
            + f"), got '{text}'"
        )
    return parts[0], parts[1]


def _modes(text: str) -> tuple[str, ...]:
    """``--mode``: precrop, preconfig, or both (``precrop,preconfig``)."""
    modes = tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if not modes or any(m not in MODES for m in modes):
        raise StudyConfigError(
            f"--mode must be {', '.join(MODES)} or both ({','.join(MODES)}), got '{text}'"
        )
    return modes


def _with_ranges(config: Any, args: argparse.Namespace) -> Any:
    """The study config with the command line's budget ranges (``--params``, ``--macs``,
    ``--latency``, ... one per cost kind), ``--width``, ``--min-width``, ``--max-width``,
    ``--divisor`` and ``--mode`` applied: each replaces the study file's key of the same name
    (``[search.ranges]``), and the study records them as it records the file's."""
    from dataclasses import replace

    if args.width is not None and (args.min_width is not None or args.max_width is not None):
        raise StudyConfigError(
            "give --width LO,HI (both bounds fixed) or --min-width/--max-width ranges, not both"
        )
    changes: dict[str, Any] = {}
    for kind in COST_KINDS.values():
        text = getattr(args, dest(kind.flag), None)
        if text is not None:
            changes[kind.name] = _range(text, dest(kind.flag).replace("_", "-"), free=True)
    if args.width is not None:
        lo, hi = _range(args.width, "width") or (0.0, 0.0)
        changes["min_width"], changes["max_width"] = (lo, lo), (hi, hi)
    if args.min_width is not None:
        changes["min_width"] = _range(args.min_width, "min-width")
    if args.max_width is not None:
        changes["max_width"] = _range(args.max_width, "max-width")
    if args.divisor is not None:
        changes["divisor"] = tuple(dict.fromkeys(args.divisor))
    if args.mode is not None:
        changes["mode"] = _modes(args.mode)
    ranges = config.ranges.replace(**changes)
    if not ranges.ranged:
        raise StudyConfigError(
            "--params none and --macs none leave nothing to budget; give one of them a range"
        )
    return replace(config, ranges=ranges)


def _with_hardware(config: Any, args: argparse.Namespace) -> Any:
    """The study config with the command line's cost-model settings (``--profile``,
    ``--device``, ``--threads``, ``--batch-size``, ``--activation-bytes``), objective and
    time limit applied."""
    from dataclasses import replace

    hw = cost_settings(args, config.hardware)
    latency = config.latency or args.latency_objective or bool(args.profile)
    changes: dict[str, Any] = {"hardware": hw, "latency": latency}
    if args.objective is not None:
        changes["objective"] = args.objective
    if args.time_limit is not None:
        changes["time_limit"] = args.time_limit
    return replace(config, **changes)


def _setting(args: argparse.Namespace, config: Any) -> tuple[tuple[int, int, int], dict]:
    """The study's input size and timm kwargs with the command line's applied: as for
    reconfig (:func:`model_setting`), the input's channels follow ``--in-chans``."""
    kwargs = {**config.timm_kwargs, **timm_kwargs(args)}
    c, h, w = args.input_size or (None, *config.input_size[1:])
    chans = kwargs.get("in_chans")
    if chans is not None and c is not None and c != chans:
        raise WidthSearchError(
            f"--input-size {c},{h},{w} has {c} channels but --in-chans is {chans}; give one of "
            "them, or make them agree"
        )
    return (chans or c or config.input_size[0], h, w), kwargs


def run(args: argparse.Namespace) -> int:

    if args.config:
        config = load_config(args.config)
        if args.model and args.model != config.model:
            raise StudyConfigError(f"{args.config} is for {config.model}, not {args.model}")
    elif args.model:
        config = StudyConfig(model=args.model)
    else:
        raise StudyConfigError("give a MODEL or --config STUDY.toml")
    input_size, kwargs = _setting(args, config)
    config = config.with_options(
        trials=args.trials,
        sampler=args.sampler,
        seed=args.seed,
        study_name=args.study,
        input_size=input_size,
        timm_kwargs=kwargs,
    )
    config = _with_ranges(_with_hardware(config, args), args)
    result = run_search(
        config,
        args.storage,
        workers=args.workers,
        timeout=args.timeout,
        progress=not args.json,  # a bar on a terminal, else a line every few seconds
    )
    info = dict(result.report)
    info.update(storage=result.storage, new_trials=result.new_trials, seconds=result.seconds)
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_front(info))
        print(f"\n{ran_line(result, config.trials, args.workers)}")
    return 0


def ran_line(result: Any, target: int, workers: int) -> str:
    """What the run added: its new trials and their time, or, when the study held ``target``
    finished trials already, that nothing ran and how to add more (``--trials`` counts all
    the study's finished trials, not new ones)."""
    if result.new_trials == 0 and result.trials >= target:
        return (
            f"nothing ran: study '{result.study_name}' holds {result.trials:,} finished trials, "
            f"at least --trials {target:,} (which counts all of them); give --trials above "
            f"{result.trials:,} to add more; storage {result.storage}"
        )
    return (
        f"{result.new_trials} new trials in {result.seconds:.1f} s (start-up included) on "
        f"{workers} worker(s); storage {result.storage}"
    )


def _divisors(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected positive integers N[,M...], got '{text}'")
    return [int(p) for p in parts]


def add_range_args(p: argparse.ArgumentParser) -> None:
    """The mix ranges of ``[search.ranges]`` as options; each replaces the file's key."""
    r = Ranges()
    add_budget_range_args(p, r)
    p.add_argument(
        "--width",
        metavar="LO,HI",
        help="every trial's width bounds: LO to HI times each group's base (PreCrop caps HI "
        "at 1); instead of --min-width/--max-width",
    )
    p.add_argument(
        "--min-width",
        metavar="LO,HI",
        help=f"range of the smallest multiplier (default {r.min_width[0]:g},{r.min_width[1]:g})",
    )
    p.add_argument(
        "--max-width",
        metavar="LO,HI",
        help=f"range of the largest multiplier, PreConfig only (default {r.max_width[0]:g},"
        f"{r.max_width[1]:g})",
    )
    p.add_argument(
        "--divisor",
        type=_divisors,
        metavar="N[,M]",
        help="widths are multiples of one of these (default 8)",
    )
    p.add_argument(
        "--mode",
        metavar="MODE",
        help="precrop (channels removed only), preconfig, or precrop,preconfig (default both)",
    )


def add_parser(sub: Any) -> None:
    """Register the ``search`` command."""

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
    p.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="a timm model name, or FILE.py:NAME or package.module:NAME (or give --config)",
    )
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
    add_timm_kwargs(p)
    add_input_size(
        p,
        "input size for MACs: C,H,W or C H W (default the study file's, else "
        "3,224,224; a single S means C,S,S)",
    )
    add_range_args(p)
    p.add_argument(
        "--latency-objective",
        action="store_true",
        help="predicted latency as a fourth objective, without a budget range (a latency "
        "range adds it too)",
    )
    add_objective_args(p, default=None)
    add_cost_args(p, defaults=False)
    p.add_argument("--json", action="store_true", help="print the result as JSON, no progress")
    p.set_defaults(func=run)
