"""``widthsearch reconfig``: new widths for a timm model from one SynExp solve."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

from widthsearch._io import check_output_path
from widthsearch.errors import WidthSearchError
from widthsearch.hardware import activation_memory, resolve_latency_model
from widthsearch.hardware.timing import DEVICES, current_device
from widthsearch.models.widthfile import save_width_file
from widthsearch.solve import solved_widths
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from widthsearch.solve.program import DEFAULT_MIN_WIDTH
from widthsearch.solve.reconfigure import (
    check_baselines,
    parse_budget,
    parse_latency,
    parse_memory,
    reconfigure,
    run_baseline,
)
from widthsearch.space.choices import GridSpec
from widthsearch.space.width_space import WidthSpace

from ._args import add_model_args, model_setting, positive_float, positive_int, ratio, table
from .inspect import model_label


def format_result(info: dict[str, Any]) -> str:
    """The main result of a :meth:`Reconfiguration.to_dict`: bounds, widths, costs, SynExp."""
    c, h, w = info["input_size"]
    bounds = f"widths {info['min_width']:g}x-{info['max_width']:g}x base"
    mode = "PreConfig" if info["mode"] == "preconfig" else "PreCrop, channels removed only"
    grid = info.get("grid")
    on = _grid_text(grid) if grid else f"multiples of {info['divisor']}"
    lines = [f"{model_label(info)} at {c}x{h}x{w}: {mode} ({bounds}, {on})", ""]
    rows = []
    for g in info["groups"]:
        if g["base"] == g["width"] and g["id"] in (0, len(info["groups"]) - 1):
            continue  # fixed input and output groups
        mark = "" if g["width"] == g["base"] else ("+" if g["width"] > g["base"] else "-")
        rows.append(
            [g["id"], g["producer"], g["base"], g["width"], f"{g['width'] / g['base']:.2f}x", mark]
        )
    lines.append(table(["group", "producer", "base", "new", "ratio", ""], rows, right={0, 2, 3, 4}))
    b = info["budgets"]
    budget_p = f"<= {b['params_ratio']:.2f}x" if b["params"] is not None else "free"
    budget_m = f"<= {b['macs_ratio']:.2f}x" if b["macs"] is not None else "free"
    lines += [
        "",
        table(
            ["", "base", "new", "ratio", "budget"],
            _hardware_rows(info)
            + [
                [
                    "params",
                    f"{info['base_params']:,}",
                    f"{info['params']:,}",
                    ratio(info["params_ratio"]),
                    budget_p,
                ],
                [
                    "MACs",
                    f"{info['base_macs']:,}",
                    f"{info['macs']:,}",
                    ratio(info["macs_ratio"]),
                    budget_m,
                ],
                [
                    "FLOPs",
                    f"{2 * info['base_macs']:,}",
                    f"{info['flops']:,}",
                    ratio(info["macs_ratio"]),
                    "(2 per MAC)",
                ],
            ],
            right={1, 2, 3},
        ),
        *_hardware_notes(info),
        *growth_notes(info),
        "",
        f"log SynExp gain over the base model: {info['log_synexp_gain']:+.2f} "
        f"(continuous optimum {info['log_synexp_continuous']:+.2f}; "
        f"{rounding_words(info['rounding_loss'], on)})",
    ]
    if info.get("lattice"):
        lines.append(_lattice_line(info["lattice"]))
    if info.get("objective", DEFAULT_OBJECTIVE) != DEFAULT_OBJECTIVE:
        value = info.get("objective_value")
        shown = "" if value is None else f": {value:+.3f} relative to the base model"
        lines.append(f"objective {info['objective']}{shown}")
    if info.get("held"):
        lines.append(
            f"held at the uniform multiplier's within the budget: {', '.join(info['held'])}"
        )
    return "\n".join(lines)


def rounding_words(loss: float, on: int | str) -> str:
    """What rounding onto the grid did to log SynExp, in words: ``loss`` is the continuous
    optimum's gain minus the rounded widths' gain. The grid lies inside the program's bounds
    and every rounded vector holds the budgets, so it cannot beat the exact continuous optimum;
    when it does, the solver stopped short of that optimum (its tolerance), and the words say
    so instead of printing a negative cost."""
    grid = f"rounding to multiples of {on}" if isinstance(on, int) else f"rounding to {on}"
    if loss >= 0.005:
        return f"{grid} cost {loss:.2f}"
    if loss > -0.005:
        return f"{grid} cost nothing"
    return (
        f"{grid} gained {-loss:.2f}: the rounded widths beat the solver's continuous answer, "
        "which stopped short of the exact optimum"
    )


def _grid_text(grid: dict[str, Any]) -> str:
    parts = []
    if grid.get("choices"):
        parts.append(f"choices {grid['choices']}")
    parts += [f"{glob}: {c}" for glob, c in (grid.get("groups") or {}).items()]
    parts += [f"tie {','.join(t)}" for t in grid.get("ties") or ()]
    return "; ".join(parts)


def _lattice_line(pick: dict[str, Any]) -> str:
    """How the lattice search found the widths, and how good they are known to be."""
    how = f"{pick['method']}, {pick['nodes']:,} nodes, {pick['seconds']:.2f} s"
    if pick["exact"]:
        return f"the best of {pick['points']:,} lattice points under every budget ({how})"
    return (
        f"best lattice point found of {pick['points']:,} ({how}): within {pick['gap']:.3f} "
        f"of the relaxation's bound; {pick['note']}"
    )


def format_baselines(info: dict[str, Any]) -> str:
    """The comparison table of a :meth:`Reconfiguration.to_dict` with baselines ('' if none)."""
    if not info["baselines"]:
        return ""
    rows = [
        [
            f"widthsearch {info['mode']}",
            f"{info['log_synexp_gain']:+.2f}",
            ratio(info["params_ratio"]),
            ratio(info["macs_ratio"]),
            "",
        ]
    ]
    for bl in info["baselines"]:
        if bl["log_synexp"] is None and not bl["collapsed"]:
            value = "n/a"
        else:
            value = "-inf" if bl["collapsed"] else f"{bl['log_synexp']:+.2f}"
        p_ratio = None if bl["params"] is None else bl["params"] / info["base_params"]
        m_ratio = None if bl["macs"] is None else bl["macs"] / info["base_macs"]
        rows.append([bl["description"], value, ratio(p_ratio), ratio(m_ratio), bl["note"]])
    return "on the same budgets (log SynExp gain over the base model):\n" + table(
        ["", "log SynExp", "params", "MACs", "note"], rows, right={1, 2, 3}
    )


def format_times(info: dict[str, Any], seconds_parse: float, startup: float = 0.0) -> str:
    """The ``time:`` line: parse, solve, round, baselines, and the imports before them."""
    sec = info["seconds"]
    return (
        f"time: parse {seconds_parse:.2f} s, solve {sec['build'] + sec['solve']:.2f} s, "
        f"round {sec['round']:.2f} s, baselines {sec.get('baselines', 0.0):.2f} s "
        f"(after {startup:.1f} s importing torch, timm and cvxpy)"
    )


def format_reconfig(info: dict[str, Any], seconds_parse: float, startup: float = 0.0) -> str:
    """The whole ``reconfig`` report: result, baselines and times."""
    parts = [
        format_result(info),
        format_baselines(info),
        format_times(info, seconds_parse, startup),
    ]
    return "\n\n".join(p for p in parts if p)


def _hardware_rows(info: dict[str, Any]) -> list[list[str]]:
    """Rows for predicted latency and activation memory, where the result has them."""
    b = info["budgets"]
    rows = []
    if info["latency_ms"] is not None:
        budget = f"<= {b['latency_ratio']:.2f}x" if b["latency_ms"] is not None else "free"
        rows.append(
            [
                "latency ms",
                f"{info['base_latency_ms']:.2f}",
                f"{info['latency_ms']:.2f}",
                ratio(info["latency_ratio"]),
                budget,
            ]
        )
    if info["memory_bytes"] is not None:
        budget = f"<= {b['memory_ratio']:.2f}x" if b["memory_bytes"] is not None else "free"
        rows.append(
            [
                "memory MB",
                f"{info['base_memory_bytes'] / 1e6:,.1f}",
                f"{info['memory_bytes'] / 1e6:,.1f}",
                ratio(info["memory_ratio"]),
                budget,
            ]
        )
    return rows


GROWTH_FLAGS = {
    "params": ("params", "--same-params (or --params R)"),
    "macs": ("MACs", "--same-flops (or --macs R)"),
    "latency": ("predicted latency", "--same-latency (or --latency R)"),
    "memory": ("activation memory", "--memory 1 (or --memory R)"),
}
"""What each unbudgeted cost is called, and the flags that hold it."""


def growth_notes(info: dict[str, Any]) -> list[str]:
    """One line per unbudgeted cost that grew past 1.2x the base's, naming the flag that holds
    it: a params budget alone lets resnet50's MACs grow to 1.73x."""
    return [
        f"note: {GROWTH_FLAGS[k][0]} grew to {r:.2f}x the base's with no budget on them; add "
        f"{GROWTH_FLAGS[k][1]} to hold them"
        for k, r in (info.get("unbudgeted_growth") or {}).items()
    ]


def _hardware_notes(info: dict[str, Any]) -> list[str]:
    notes = []
    batch = info["batch_size"]
    if info["latency_ms"] is not None:
        notes.append(
            f"latency: predicted ms per forward of a batch of {batch}; "
            + info["latency_model"].removeprefix("latency model: ")
        )
    elif info["mode"] == "preconfig":
        # measured: efficientnet_b0 --same-flops 1.97x the base's CPU latency (0.82x with
        # --same-latency); resnet18 on CIFAR-10 1.03x (0.92x), no accuracy difference detected
        notes.append(
            "latency: not budgeted, and equal MACs can run slower than the base (README: "
            "Latency and memory); --same-latency holds the base's predicted latency too"
        )
    if info["memory_bytes"] is not None:
        notes.append(
            f"memory: activation bytes a training step saves for backward at batch {batch} (exact)"
        )
    return notes


def _check_budget_flags(args: argparse.Namespace) -> None:
    """One budget per cost, each a ratio or a finite count (before any model is analysed)."""

    if not (
        args.same_flops
        or args.same_params
        or args.params
        or args.flops
        or args.macs
        or args.latency
        or args.same_latency
        or args.memory
    ):
        raise WidthSearchError(
            "give a budget: --same-flops, --same-params, --params R, --flops R, --macs R, "
            "--latency R, --same-latency or --memory R"
        )
    if args.same_params and args.params is not None:
        raise WidthSearchError("give --same-params or --params, not both")
    if args.same_flops and (args.flops is not None or args.macs is not None):
        raise WidthSearchError("give --same-flops or --flops/--macs, not both")
    if args.flops is not None and args.macs is not None:
        raise WidthSearchError("give --flops or --macs, not both")
    for text in (args.params, args.flops, args.macs):
        if text is not None:
            parse_budget(text, 1)  # the syntax and range of the text; ratios need the model
    _check_hardware_args(args)


def _budgets(args: argparse.Namespace, space) -> tuple[int | None, int | None]:

    params = space.params() if args.same_params else None
    if args.params is not None:
        params = parse_budget(args.params, space.params())
    macs = space.macs() if args.same_flops else None
    if args.flops is not None:
        macs = parse_budget(args.flops, space.macs(), per=2)
    if args.macs is not None:
        macs = parse_budget(args.macs, space.macs())
    return params, macs


@dataclass(frozen=True)
class Hardware:
    """The latency and memory models a command needs, and their budgets (absolute)."""

    latency_model: Any = None
    memory_model: Any = None
    latency: float | None = None
    memory: int | None = None
    latency_note: str = ""


def _check_hardware_args(args: argparse.Namespace) -> None:
    """Budget syntax and conflicts, before any model is parsed or profiled."""

    if args.same_latency and args.latency is not None:
        raise WidthSearchError("give --same-latency or --latency, not both")
    if args.latency is not None:
        parse_latency(args.latency, 1.0)
    if args.memory is not None:
        parse_memory(args.memory, 1)
    if args.latency or args.same_latency or args.profile or getattr(args, "hardware", False):
        current_device(  # the device exists, the settings make sense
            args.device, threads=args.threads, batch_size=args.batch_size or 1, dtype="float32"
        )


def hardware_models(args: argparse.Namespace, space: Any, *, quiet: bool = False) -> Hardware:
    """The latency model (profile, cached or quick), the memory model and their budgets that
    ``args`` ask for (see :func:`add_hardware_args`)."""
    want_latency = bool(
        args.latency or args.same_latency or args.profile or getattr(args, "hardware", False)
    )
    want_memory = bool(args.memory or getattr(args, "hardware", False))
    latency_model = memory_model = None
    note = ""
    batch = args.batch_size
    if want_latency:

        def progress(message: str) -> None:
            if not quiet:
                print(message, file=sys.stderr, flush=True)

        resolved = resolve_latency_model(
            space,
            profile=args.profile,
            device=args.device,
            threads=args.threads,
            batch_size=args.batch_size,
            solved_widths=solved_widths,
            progress=progress,
        )
        latency_model, note = resolved.model, resolved.note
        batch = latency_model.device.batch_size
    if want_memory:
        memory_model = activation_memory(space, batch_size=batch or 1)
    latency = memory = None
    if latency_model is not None:
        base = latency_model(space.base_widths)
        if args.same_latency:
            latency = base
        elif args.latency is not None:
            latency = parse_latency(args.latency, base)
    if memory_model is not None and args.memory is not None:
        memory = parse_memory(args.memory, memory_model(space.base_widths))
    return Hardware(latency_model, memory_model, latency, memory, note)


def add_hardware_args(p: argparse.ArgumentParser, *, budgets: bool = True) -> None:
    """Latency and memory options shared by reconfig and search."""

    if budgets:
        p.add_argument(
            "--latency",
            metavar="R",
            help="predicted latency budget: ratio of the base's (0.9) or a time (12ms)",
        )
        p.add_argument(
            "--same-latency", action="store_true", help="predicted latency at most the base's"
        )
        p.add_argument(
            "--memory",
            metavar="R",
            help="training activation memory budget at --batch-size: ratio or a size (300MB)",
        )
    p.add_argument(
        "--profile",
        metavar="PROFILE.json",
        help="latency profile of this device (widthsearch profile); default: a cached quick "
        "profile, made if missing (about a minute)",
    )
    p.add_argument(
        "--device", choices=DEVICES, default="cpu", help="device the latency is for (cpu)"
    )
    p.add_argument("--threads", type=positive_int, help="CPU threads (default: torch's)")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="batch of the latency and memory figures (default: the profile's, or 1)",
    )


def _synflow_progress(k: int, n: int) -> None:
    print(
        f"\rSynFlow baseline: round {k}/{n}",
        end="\n" if k == n else "",
        file=sys.stderr,
        flush=True,
    )


def _baseline_names(text: str) -> list[str]:

    names = [] if text.strip() == "none" else [b.strip() for b in text.split(",") if b.strip()]
    check_baselines(names)
    return names


def run(args: argparse.Namespace) -> int:
    """Solve and print (and write ``-o``) first; then the baselines, which Ctrl-C may stop."""
    import time

    # everything a typo can break is checked before the seconds of imports and analysis
    _check_budget_flags(args)
    names = _baseline_names(args.baselines)
    grid = GridSpec.parse(args.choices, args.tie or ())  # a typo fails before the analysis
    if args.output:
        check_output_path(args.output, "-o")
    input_size, kwargs = model_setting(args)

    start = time.perf_counter()
    import cvxpy  # noqa: F401  - imported before the timings, which measure the work alone
    import timm  # noqa: F401

    startup = time.perf_counter() - start
    start = time.perf_counter()
    space = WidthSpace.from_ref(args.model, input_size=input_size, **kwargs)
    parse_seconds = time.perf_counter() - start
    params, macs = _budgets(args, space)
    hw = hardware_models(args, space, quiet=args.json)
    result = reconfigure(
        space,
        params=params,
        macs=macs,
        latency=hw.latency,
        memory=hw.memory,
        latency_model=hw.latency_model,
        memory_model=hw.memory_model,
        latency_note=hw.latency_note,
        mode=args.mode,
        min_width=args.min_width,
        max_width=args.max_width,
        divisor=args.divisor,
        choices=None if grid.empty else grid,
        objective=args.objective,
    )
    if args.output:
        save_width_file(args.output, result, space)
    if not args.json:
        print(format_result(result.to_dict()), flush=True)
        if args.output:
            print(f"widths written to {args.output}", flush=True)

    progress = _synflow_progress if sys.stderr.isatty() and not args.json else None
    found, interrupted, start = [], None, time.perf_counter()
    try:
        for name in names:
            found.append(run_baseline(result, space, name, synflow_progress=progress))
    except KeyboardInterrupt:
        interrupted = names[len(found)]
        if progress is not None:
            print(file=sys.stderr)  # end the progress line
    result = result.with_baselines(found, time.perf_counter() - start)
    info = result.to_dict()
    info["parse_seconds"] = parse_seconds
    info["startup_seconds"] = startup
    if args.json:
        if interrupted:
            info["interrupted"] = f"baseline {interrupted}"
        print(json.dumps(info, indent=2))
    else:
        baselines = format_baselines(info)
        if baselines:
            print(f"\n{baselines}")
        print(f"\n{format_times(info, parse_seconds, startup)}")
    if interrupted:
        kept = f"; {args.output} is written" if args.output else ""
        print(
            f"widthsearch: interrupted during the {interrupted} baseline; the result above is "
            f"complete{kept}",
            file=sys.stderr,
        )
        return 130
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``reconfig`` command."""

    p = sub.add_parser(
        "reconfig",
        help="choose new widths for a timm model by one SynExp solve",
        description="Choose new channel widths for a timm model that maximize SynExp under "
        "parameter and/or MAC budgets (one geometric program), round them to a grid, and hold "
        "every budget exactly. R is a ratio of the base model (0.8) or an absolute count (4.2M, "
        "300e6; a plain number of 1000 or more is a count).",
    )
    add_model_args(p)
    p.add_argument("--same-flops", action="store_true", help="MACs (so FLOPs) at most the base's")
    p.add_argument("--same-params", action="store_true", help="params at most the base's")
    p.add_argument("--params", metavar="R", help="params budget: ratio or count")
    p.add_argument(
        "--flops", metavar="R", help="FLOPs budget: ratio, or a count of FLOPs (2 per MAC)"
    )
    p.add_argument("--macs", metavar="R", help="MACs budget: ratio, or a count of MACs")
    p.add_argument(
        "--mode",
        choices=["precrop", "preconfig"],
        default="preconfig",
        help="precrop removes channels only; preconfig also grows them (default)",
    )
    p.add_argument(
        "--max-width",
        type=positive_float,
        metavar="X",
        help="largest multiplier of a group's base width (default 2; precrop: at most 1, "
        "default 1)",
    )
    p.add_argument(
        "--min-width",
        type=positive_float,
        metavar="X",
        default=DEFAULT_MIN_WIDTH,
        help=f"smallest multiplier (default {DEFAULT_MIN_WIDTH:g})",
    )
    p.add_argument(
        "--divisor",
        type=positive_int,
        default=8,
        metavar="N",
        help="widths are multiples of N (default 8)",
    )
    p.add_argument(
        "--choices",
        metavar="LIST",
        help="put every free group on a grid: multipliers of its base width (0.25x,0.5x,0.75x,1x; "
        "each round(m*base)) or widths (8,16,24,32); the pick is the best lattice point under "
        "every budget (exact within 1 s, else the best found and its gap)",
    )
    p.add_argument(
        "--tie",
        action="append",
        metavar="GLOB[,GLOB...]",
        help="the groups whose producers (see inspect) match these globs share one width; "
        "repeatable",
    )
    p.add_argument(
        "--objective",
        choices=list(OBJECTIVES),
        default=DEFAULT_OBJECTIVE,
        help="what the widths maximize: "
        + "; ".join(f"{o.name}: {o.summary}" for o in OBJECTIVES.values())
        + f" (default {DEFAULT_OBJECTIVE})",
    )
    p.add_argument(
        "--baselines",
        default="uniform",
        metavar="LIST",
        help="comparisons on the same budgets, run after the result is printed and written: "
        "uniform (default), synflow (needs a params budget; 20 s to minutes on a CPU), "
        "uniform,synflow, or none",
    )
    add_hardware_args(p)
    p.add_argument(
        "--hardware",
        action="store_true",
        help="also predict latency and activation memory without budgets on them",
    )
    p.add_argument("-o", "--output", metavar="WIDTHS.json", help="write a JSON width file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
