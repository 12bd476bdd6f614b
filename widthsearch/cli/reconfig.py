"""``widthsearch reconfig``: new widths for a timm model from one SynExp solve."""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, replace
from typing import Any

from widthsearch._io import check_output_path
from widthsearch.errors import WidthSearchError
from widthsearch.models.widthfile import save_width_file
from widthsearch.solve.costs import COST_KINDS, get_cost
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE
from widthsearch.solve.program import DEFAULT_MIN_WIDTH
from widthsearch.solve.reconfigure import (
    check_baselines,
    chosen_result,
    reconfigure,
    run_baseline,
)
from widthsearch.space.choices import GridSpec
from widthsearch.space.width_space import WidthSpace
from widthsearch.storage import DEFAULT_STORAGE
from widthsearch.train.data import load_dataset
from widthsearch.verify.choose import CONFIRM_SEEDS, DEFAULT_TOP, choose_by_training
from widthsearch.verify.settings import Execution, VerifySettings

from ._args import (
    Models,
    absolute_budgets,
    add_budget_args,
    add_cost_args,
    add_grid_args,
    add_model_args,
    add_objective_args,
    add_quick_check_args,
    budget_flags,
    budget_texts,
    check_device,
    grid_spec,
    model_setting,
    models_for,
    parse_input_size,
    positive_float,
    positive_int,
    ratio,
    space_notes,
    table,
)
from .inspect import model_label
from .verify import log_line, train_progress


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


def lattice_size(points: int) -> str:
    """A lattice's number of points: in full up to a million, else as a power of ten."""
    if points <= 10**6:
        return f"{points:,}"
    return f"about 10^{math.log10(points):.1f}"


def _lattice_line(pick: dict[str, Any]) -> str:
    """How the lattice search found the widths, and how good they are known to be: exact (no
    lattice point is better), certified (within the gap tolerance of the best) or the best
    found by the time limit, each gap measured against the Lagrangian bound
    (docs/concepts/grids-and-ties.md)."""
    how = f"{pick['method']}, {pick['nodes']:,} nodes, {pick['seconds']:.2f} s"
    points = lattice_size(pick["points"])
    status = pick.get("status") or ("exact" if pick["exact"] else "best found")
    if status == "exact":
        return f"exact: the best of {points} lattice points under every budget ({how})"
    if status == "certified":
        return (
            f"certified: within {pick['gap']:.4f} (log objective) of the best of {points} "
            f"lattice points, the gap tolerance ({how})"
        )
    return (
        f"best found: within {pick['gap']:.4f} (log objective) of the best of {points} lattice "
        f"points by the Lagrangian bound, when the time limit stopped the search ({how}); "
        "give --time-limit more seconds to close it"
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


def _hardware_rows(info: dict[str, Any]) -> list[list[str]]:
    """Rows for every modelled cost the result predicts (latency, activation memory, ...)."""
    b = info["budgets"]
    rows = []
    for kind in COST_KINDS.values():
        if kind.build is None or info.get(kind.key) is None:
            continue
        budget = f"<= {b[kind.ratio_key]:.2f}x" if b.get(kind.key) is not None else "free"
        rows.append(
            [
                f"{kind.label} {kind.display_unit}",
                kind.number(info[kind.base_key]),
                kind.number(info[kind.key]),
                ratio(info[kind.ratio_key]),
                budget,
            ]
        )
    return rows


def growth_notes(info: dict[str, Any]) -> list[str]:
    """One line per unbudgeted cost that grew past 1.2x the base's, naming the flag that holds
    it: a params budget alone lets resnet50's MACs grow to 1.73x."""
    return [
        f"note: {get_cost(k).noun} grew to {r:.2f}x the base's with no budget on them; add "
        f"{get_cost(k).hold} to hold them"
        for k, r in (info.get("unbudgeted_growth") or {}).items()
    ]


def _hardware_notes(info: dict[str, Any]) -> list[str]:
    notes = []
    batch = info["batch_size"]
    if info.get("latency_ms") is not None:
        notes.append(
            f"latency: predicted ms per forward of a batch of {batch}; "
            + info["latency_model"].removeprefix("latency model: ")
        )
    elif info["mode"] == "preconfig":
        # measured: efficientnet_b0 --same-flops 1.97x the base's CPU latency (0.82x with
        # --same-latency); resnet18 on CIFAR-10 1.03x (0.92x), no accuracy difference detected
        notes.append(
            "latency: not budgeted, and equal MACs can run slower than the base (docs: "
            "concepts/hardware-costs.md); --same-latency holds the base's predicted latency too"
        )
    for kind in COST_KINDS.values():
        if kind.explain and info.get(kind.key) is not None:
            notes.append(f"{kind.label}: {kind.explain.format(batch=batch)}")
    return notes


def hardware_models(args: argparse.Namespace, space: Any, *, quiet: bool = False) -> Models:
    """The cost models ``args`` ask for: a budget's (``--latency``, ``--memory``, ...), the
    latency model of ``--profile``, and every model with ``--hardware``."""
    wanted = {k for k in budget_texts(args) if get_cost(k).build is not None}
    if args.profile:
        wanted.add("latency")
    if getattr(args, "hardware", False):
        wanted |= {k.name for k in COST_KINDS.values() if k.build is not None}
    return models_for(args, space, wanted, quiet=quiet)


@dataclass(frozen=True)
class TrainTop:
    """What ``--train-top`` trains: the screening's settings, how it runs, the fresh seeds."""

    settings: VerifySettings
    execution: Execution
    confirm_seeds: tuple[int, ...]


def _seeds(text: str, flag: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        seeds = ()
    if not seeds:
        raise WidthSearchError(f"{flag} takes integers like 0,1,2, got '{text}'")
    return seeds


def train_top_settings(args: argparse.Namespace, grid: GridSpec) -> TrainTop | None:
    """``--train-top K``'s settings, checked before any analysis (None without it).

    Raises:
        WidthSearchError: K below 2, no grid, seeds that are not integers or overlap.
    """
    if not args.train_top:
        return None
    if args.train_top < 2:
        raise WidthSearchError("--train-top chooses among 2 or more points; give K >= 2")
    if grid.empty:
        raise WidthSearchError(
            "--train-top chooses among a width grid's best points; give --choices (and --tie)"
        )
    seeds = _seeds(args.train_seeds, "--train-seeds")
    confirm = _seeds(args.confirm_seeds, "--confirm-seeds")
    if set(seeds) & set(confirm):
        raise WidthSearchError("--confirm-seeds must be fresh: none of --train-seeds")
    settings = VerifySettings(
        data=args.data,
        epochs=args.epochs,
        seeds=seeds,
        max_steps=args.max_steps,
        train_subset=args.train_subset,
        input_size=None if args.train_input_size is None else args.train_input_size,
    )
    settings.recipe()  # a recipe it refuses is said before anything runs
    execution = Execution(
        workers=args.workers,
        storage_url=args.storage,
        pruner="sha",
        latency_runs=0,
        estimate_over=0.0,
    )
    return TrainTop(settings, execution, confirm)


def train_top(result: Any, space: Any, training: TrainTop, *, quiet: bool) -> Any:
    """Train ``result``'s best points and keep the chosen one (``widthsearch.verify.choose``)."""
    settings = training.settings
    size = settings.input_size or space.input_size
    data = load_dataset(settings.data, size)
    settings = replace(settings, input_size=tuple(size))
    log = None if quiet else log_line
    progress = None if quiet else train_progress(settings.recipe(), len(data.train))
    choice = choose_by_training(
        space,
        result,
        data,
        settings,
        training.execution,
        confirm_seeds=training.confirm_seeds,
        progress=progress,
        log=log,
    )
    return chosen_result(result, space, choice.widths, choice.to_dict())


def format_choice(chosen: Any) -> str:
    """What ``--train-top`` chose, in three lines: the screening, the decision, the cost."""
    rows = []
    for r in chosen["screening"]:
        top1 = "-" if r["top1"] is None else f"{100 * r['top1']:.2f}"
        stopped = ", ".join(f"seed {p['seed']} at epoch {p['epoch']}" for p in r["pruned"])
        rows.append([r["candidate"], f"{r['log_synexp']:+.2f}", top1, r["n"], stopped])
    conf = chosen["confirmation"]
    parts = []
    for key in ("vs_objective", "vs_uniform"):
        v = conf.get(key)
        if v is not None and v.get("mean") is not None:
            parts.append(f"against {v['reference']}: {100 * v['mean']:+.2f} points, {v['label']}")
    return "\n".join(
        [
            f"training in the loop: the best {chosen['k']} lattice points, screened "
            f"({chosen['settings']['data']}, seeds {chosen['settings']['seeds']}, successive "
            "halving)",
            table(["point", "log SynExp", "top-1 %", "runs", "stopped"], rows, right={1, 2, 3}),
            f"confirmed with fresh seeds {chosen['settings']['confirm_seeds']}: "
            + ("; ".join(parts) or "no paired difference"),
            f"chosen: {chosen['chosen']}; {chosen['reason']}",
            f"cost: {chosen['runs']} runs, {chosen['train_seconds']:.0f} s of training",
        ]
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
    texts = budget_texts(args)
    if not texts:
        raise WidthSearchError(f"give a budget: {budget_flags()}")
    check_device(args, need=bool(set(texts) & {"latency"} or args.profile or args.hardware))
    names = _baseline_names(args.baselines)
    grid = grid_spec(args)  # a typo fails before the analysis
    training = train_top_settings(args, grid)
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
    hw = hardware_models(args, space, quiet=args.json)
    result = reconfigure(
        space,
        budgets=absolute_budgets(space, texts, hw.models),
        models=hw.models,
        latency_note=hw.note,
        mode=args.mode,
        min_width=args.min_width,
        max_width=args.max_width,
        divisor=args.divisor,
        choices=None if grid.empty else grid,
        objective=args.objective,
        time_limit=args.time_limit,
        top=args.train_top or 1,
    )
    if training is not None:
        if not args.json:
            print(format_result(result.to_dict()), flush=True)
        result = train_top(result, space, training, quiet=args.json)
    if args.output:
        save_width_file(args.output, result, space)
    if not args.json:
        print(format_choice(result.chosen_by) if training else format_result(result.to_dict()))
        for note in space_notes(space):
            print(f"note: {note}", flush=True)
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


def add_train_top_args(p: argparse.ArgumentParser) -> None:
    """``--train-top K`` and what it trains with (see :mod:`widthsearch.verify.choose`)."""
    p.add_argument(
        "--train-top",
        type=positive_int,
        metavar="K",
        help="train the best K lattice points (needs --choices) with successive halving on "
        "the held-out split, keep the best trained one if fresh seeds confirm it beats the "
        f"objective's pick (K={DEFAULT_TOP} is the documented default choice; off unless given)",
    )
    p.add_argument(
        "--data",
        default="digits",
        metavar="SPEC",
        help="with --train-top: digits (default), cifar10:PATH, imagefolder:PATH, ... (as verify)",
    )
    p.add_argument(
        "--epochs", type=positive_int, default=10, help="with --train-top: epochs (default 10)"
    )
    p.add_argument(
        "--train-seeds", default="0", metavar="LIST", help="with --train-top: screening seeds (0)"
    )
    p.add_argument(
        "--confirm-seeds",
        default=",".join(map(str, CONFIRM_SEEDS)),
        metavar="LIST",
        help="with --train-top: fresh seeds of the confirmation (default "
        f"{','.join(map(str, CONFIRM_SEEDS))})",
    )
    p.add_argument(
        "--train-input-size",
        type=parse_input_size,
        metavar="C,H,W",
        help="with --train-top: the training input size (default: --input-size)",
    )
    add_quick_check_args(p)
    p.add_argument(
        "--storage",
        default=DEFAULT_STORAGE,
        metavar="URL",
        help=f"with --train-top: where the runs are kept, so a re-run resumes (default "
        f"{DEFAULT_STORAGE})",
    )
    p.add_argument(
        "--workers",
        type=positive_int,
        default=1,
        help="with --train-top: processes that train (default 1)",
    )


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
    add_budget_args(p)
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
    add_grid_args(
        p,
        "put the free groups on a width grid; the pick is the best lattice point "
        "under every budget (exact, else the best found and its certified gap)",
    )
    add_objective_args(p)
    p.add_argument(
        "--baselines",
        default="uniform",
        metavar="LIST",
        help="comparisons on the same budgets, run after the result is printed and written: "
        "uniform (default), synflow (needs a params budget; 20 s to minutes on a CPU), "
        "uniform,synflow, or none",
    )
    add_cost_args(p)
    p.add_argument(
        "--hardware",
        action="store_true",
        help="also predict every modelled cost (latency, activation memory, ...) without "
        "budgets on them",
    )
    add_train_top_args(p)
    p.add_argument("-o", "--output", metavar="WIDTHS.json", help="write a JSON width file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)
