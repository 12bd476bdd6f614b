"""``widthsearch`` command line: a thin layer over the Python API.

torch and timm take seconds to import, so they are imported inside the commands, never at the
top: ``widthsearch --help`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from typing import Any

from .errors import WidthSearchError


def parse_input_size(text: str) -> tuple[int, int, int]:
    """``"3,224,224"`` -> ``(3, 224, 224)``; a single number ``S`` means ``3,S,S``."""
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",") if p.strip()]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = [3, parts[0], parts[0]]
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"expected C,H,W (e.g. 3,224,224), got '{text}'")
    return parts[0], parts[1], parts[2]


def _fmt_count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3f}{unit}"
    return str(n)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: set[int]) -> str:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for r in cells:
        lines.append(
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_space(info: dict[str, Any], *, verbose: bool = False) -> str:
    """The ``inspect`` report of a :meth:`WidthSpace.to_dict` result."""
    groups = info["groups"]
    free = sum(not g["fixed"] for g in groups)
    c, h, w = info["input_size"]
    rows = []
    for g in groups:
        members = ", ".join(g["layers"]) if verbose else f"{len(g['layers'])}"
        rows.append(
            [
                g["id"],
                g["width"],
                "fixed" if g["fixed"] else "",
                g["multiple_of"] if g["multiple_of"] > 1 else "",
                g["producer"],
                members,
                f"{100 * g['params_share']:.1f}",
                f"{100 * g['macs_share']:.1f}",
            ]
        )
    header = ["group", "width", "fixed", "mult", "producer", "layers", "params%", "MACs%"]
    lines = [
        f"{info['model']} at {c}x{h}x{w}: {len(groups)} channel groups ({free} free), "
        f"{len(info['layers'])} layers",
        "",
        _table(header, rows, right={0, 1, 3, 5, 6, 7}),
        "",
        f"params {info['params']:,} ({_fmt_count(info['params'])})   "
        f"MACs {info['macs']:,} ({_fmt_count(info['macs'])}, per image)",
        "params% / MACs%: share of the model's params / MACs that grow with the group's width "
        "(a conv grows with its input and output groups, so shares add up to more than 100).",
    ]
    if info["constant_params"]:
        lines.append(f"width-independent parameters: {', '.join(info['constant_params'])}")
    return "\n".join(lines)


def cmd_inspect(args: argparse.Namespace) -> int:
    from .space import WidthSpace

    space = WidthSpace.from_timm(args.model, input_size=args.input_size)
    info = space.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_space(info, verbose=args.verbose))
    return 0


def _ratio(x: float | None) -> str:
    return "" if x is None else f"{x:.2f}x"


def format_reconfig(info: dict[str, Any], seconds_parse: float, startup: float = 0.0) -> str:
    """The ``reconfig`` report of a :meth:`Reconfiguration.to_dict` result."""
    c, h, w = info["input_size"]
    bounds = (
        f"widths up to {info['max_width']:g}x base"
        if info["mode"] == "preconfig"
        else "channels removed only"
    )
    mode = "PreConfig" if info["mode"] == "preconfig" else "PreCrop"
    lines = [
        f"{info['model']} at {c}x{h}x{w}: {mode} ({bounds}, at least {info['min_width']:g}x, "
        f"multiples of {info['divisor']})",
        "",
    ]
    rows = []
    for g in info["groups"]:
        if g["base"] == g["width"] and g["id"] in (0, len(info["groups"]) - 1):
            continue  # fixed input and output groups
        mark = "" if g["width"] == g["base"] else ("+" if g["width"] > g["base"] else "-")
        rows.append(
            [g["id"], g["producer"], g["base"], g["width"], f"{g['width'] / g['base']:.2f}x", mark]
        )
    lines.append(
        _table(["group", "producer", "base", "new", "ratio", ""], rows, right={0, 2, 3, 4})
    )
    b = info["budgets"]
    budget_p = f"<= {b['params_ratio']:.2f}x" if b["params"] is not None else "free"
    budget_m = f"<= {b['macs_ratio']:.2f}x" if b["macs"] is not None else "free"
    lines += [
        "",
        _table(
            ["", "base", "new", "ratio", "budget"],
            [
                [
                    "params",
                    f"{info['base_params']:,}",
                    f"{info['params']:,}",
                    _ratio(info["params_ratio"]),
                    budget_p,
                ],
                [
                    "MACs",
                    f"{info['base_macs']:,}",
                    f"{info['macs']:,}",
                    _ratio(info["macs_ratio"]),
                    budget_m,
                ],
                [
                    "FLOPs",
                    f"{2 * info['base_macs']:,}",
                    f"{info['flops']:,}",
                    _ratio(info["macs_ratio"]),
                    "(2 per MAC)",
                ],
            ],
            right={1, 2, 3},
        ),
        "",
        f"log SynExp gain over the base model: {info['log_synexp_gain']:+.2f} "
        f"(continuous optimum {info['log_synexp_continuous']:+.2f}; rounding to multiples of "
        f"{info['divisor']} cost {info['rounding_loss']:.2f})",
    ]
    if info["baselines"]:
        lines += ["", "on the same budgets (log SynExp gain over the base model):"]
        rows = [
            [
                f"widthsearch {info['mode']}",
                f"{info['log_synexp_gain']:+.2f}",
                _ratio(info["params_ratio"]),
                _ratio(info["macs_ratio"]),
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
            rows.append([bl["description"], value, _ratio(p_ratio), _ratio(m_ratio), bl["note"]])
        lines.append(_table(["", "log SynExp", "params", "MACs", "note"], rows, right={1, 2, 3}))
    sec = info["seconds"]
    lines += [
        "",
        f"time: parse {seconds_parse:.2f} s, solve {sec['build'] + sec['solve']:.2f} s, "
        f"round {sec['round']:.2f} s, baselines {sec['baselines']:.2f} s "
        f"(after {startup:.1f} s importing torch, timm and cvxpy)",
    ]
    return "\n".join(lines)


def _budgets(args: argparse.Namespace, space) -> tuple[int | None, int | None]:
    from .reconfig import parse_budget

    if args.same_params and args.params is not None:
        raise WidthSearchError("give --same-params or --params, not both")
    if args.same_flops and (args.flops is not None or args.macs is not None):
        raise WidthSearchError("give --same-flops or --flops/--macs, not both")
    if args.flops is not None and args.macs is not None:
        raise WidthSearchError("give --flops or --macs, not both")
    params = space.params() if args.same_params else None
    if args.params is not None:
        params = parse_budget(args.params, space.params())
    macs = space.macs() if args.same_flops else None
    if args.flops is not None:
        macs = parse_budget(args.flops, space.macs(), per=2)
    if args.macs is not None:
        macs = parse_budget(args.macs, space.macs())
    return params, macs


def _synflow_progress(k: int, n: int) -> None:
    print(
        f"\rSynFlow baseline: round {k}/{n}",
        end="\n" if k == n else "",
        file=sys.stderr,
        flush=True,
    )


def cmd_reconfig(args: argparse.Namespace) -> int:
    import time

    from .reconfig import reconfigure
    from .space import WidthSpace
    from .widthfile import save_width_file

    if not (args.same_flops or args.same_params or args.params or args.flops or args.macs):
        raise WidthSearchError(
            "give a budget: --same-flops, --same-params, --params R, --flops R or --macs R"
        )
    start = time.perf_counter()
    import cvxpy  # noqa: F401  - imported before the timings, which measure the work alone
    import timm  # noqa: F401

    startup = time.perf_counter() - start
    start = time.perf_counter()
    space = WidthSpace.from_timm(args.model, input_size=args.input_size)
    parse_seconds = time.perf_counter() - start
    params, macs = _budgets(args, space)
    chosen = [] if args.baselines == "none" else [b for b in args.baselines.split(",") if b]
    progress = _synflow_progress if sys.stderr.isatty() and not args.json else None
    result = reconfigure(
        space,
        params=params,
        macs=macs,
        mode=args.mode,
        min_width=args.min_width,
        max_width=args.max_width,
        divisor=args.divisor,
        baselines=chosen,
        synflow_progress=progress,
    )
    if args.output:
        save_width_file(args.output, result, space)
    info = result.to_dict()
    info["parse_seconds"] = parse_seconds
    info["startup_seconds"] = startup
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(format_reconfig(info, parse_seconds, startup))
        if args.output:
            print(f"widths written to {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .export import export

    name = export(args.widths, args.py, args.name)
    module = args.py[:-3].replace("/", ".").lstrip(".") if args.py.endswith(".py") else args.py
    print(
        f"wrote {args.py}: after `import {module.rsplit('.', 1)[-1]}`, "
        f'timm.create_model("{name}") builds the model'
    )
    return 0


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
        _table(header, rows, right={0, 1, 2, 3, 5, 6, 7, 8, 9}),
    ]
    return "\n".join(lines)


def cmd_search(args: argparse.Namespace) -> int:
    from .search import run_search
    from .study import StudyConfig, StudyConfigError, load_config

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


def cmd_front(args: argparse.Namespace) -> int:
    from .search import load_front

    info = load_front(args.study, args.storage)
    print(json.dumps(info, indent=2) if args.json else format_front(info))
    return 0


def format_verify(info: dict[str, Any]) -> str:
    """The ``verify`` report of :meth:`VerifyReport.to_dict`."""
    from .verify import mean_std

    c, h, w = info["input_size"]
    r = info["recipe"]
    seeds = ",".join(map(str, info["seeds"]))
    lines = [
        f"{info['model']}"
        + (f" (study '{info['study']}')" if info["study"] else "")
        + f": {info['pick']}, the base model and a uniform-width control",
        f"data {info['data_description']}; trained at {c}x{h}x{w} on {info['device']}, "
        f"{r['epochs']} epoch{'s' * (r['epochs'] != 1)}, batch {r['batch_size']}, "
        f"AdamW lr {r['lr']:g}, seeds {seeds}",
        "",
    ]
    rows = []
    base = next((s for s in info["results"] if s["kind"] == "base"), {})

    def with_ratio(s: dict[str, Any], key: str) -> str:
        if s[key] is None:
            return "-"
        return f"{s[key]:,}" + (f" ({s[key] / base[key]:.2f}x)" if base.get(key) else "")

    for s in info["results"]:
        name = s["candidate"] + (f" (= {s['same_as']})" if s["same_as"] else "")
        rows.append(
            [
                name,
                s["kind"],
                f"{s['log_synexp']:+.2f}",
                with_ratio(s, "params"),
                with_ratio(s, "macs"),
                mean_std(s["top1"], s["top1_std"], 100),
                mean_std(s["loss"], s["loss_std"], digits=3),
                f"{s['images_per_second']:.0f}" if s["seeds"] else "-",
                f"{s['wall_seconds']:.0f}",
            ]
        )
    header = ["candidate", "kind", "log SynExp", "params", "MACs", "top-1 %", "val loss"]
    header += ["img/s", "wall s"]
    lines.append(_table(header, rows, right={2, 3, 4, 5, 6, 7, 8}))
    lines += [
        "",
        f"params and MACs of the models as trained ({info['num_classes']} classes, {c}x{h}x{w}); "
        "log SynExp: gain over the base at the search's input size;",
        "top-1 and val loss: last epoch on the validation split, mean ± std over seeds.",
        *(f"note: {n}" for n in info["notes"]),
        f"{info['trained']} run(s) trained, {info['skipped']} already finished"
        + (f"; results in {info['out']}" if info["out"] else "")
        + (f" and in study '{info['study']}'" if info["study"] else ""),
    ]
    return "\n".join(lines)


class _TrainBars:
    """A tqdm bar per candidate and seed: epoch, training loss, validation accuracy."""

    def __init__(self, recipe, n_train: int) -> None:
        self.total = recipe.epochs * recipe.steps_per_epoch(n_train)

    def __call__(self, cand, seed: int):
        from tqdm import tqdm

        bar = tqdm(total=self.total, desc=f"{cand.label} seed {seed}", unit="step", leave=True)
        state = {"acc": ""}

        def on_step(epoch: int, step: int, steps: int, loss: float) -> None:
            bar.n = epoch * steps + step + 1
            shown = f", loss {loss:.3f}" if math.isfinite(loss) else ""  # read every few steps
            bar.set_postfix_str(f"epoch {epoch + 1}{shown}{state['acc']}")

        def on_epoch(record: dict) -> None:
            state["acc"] = f", val {100 * record['val_top1']:.1f}%"

        return on_step, on_epoch, bar.close


def cmd_verify(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .train import Recipe, resolve_device
    from .verify import VerifyError, plan_from_study, plan_from_width_files, run_verify

    targets = args.targets
    files = [t for t in targets if t.endswith(".json")]
    if files and len(files) != len(targets):
        raise VerifyError("give one study name or width files (.json), not both")
    if not files and len(targets) != 1:
        raise VerifyError("give one study name (with --storage) or one or more width files")
    recipe = Recipe(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise VerifyError(f"--seeds takes integers like 0,1,2, got '{args.seeds}'") from None
    device = resolve_device(args.device)
    if files:
        plan = plan_from_width_files(files)
    else:
        plan = plan_from_study(targets[0], args.storage, top=args.top)
    size = args.input_size or plan.space.input_size
    data = load_dataset(args.data, size)
    out = args.out or f"{plan.study.study_name if plan.study else plan.space.model}-verify.csv"
    bars = _TrainBars(recipe, len(data.train)) if sys.stderr.isatty() and not args.json else None
    report = run_verify(
        plan,
        data,
        recipe,
        seeds=seeds,
        device=device,
        input_size=size,
        out=out,
        progress=bars,
    )
    info = report.to_dict()
    print(json.dumps(info, indent=2) if args.json else format_verify(info))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import default_folder, write_report

    folder = args.output or default_folder(args.study)
    result = write_report(args.study, args.storage, folder)
    print(
        f"wrote {', '.join(result.files)} to {result.folder}/ (front: {result.front_size} "
        f"trials, {result.verified} verification run(s))"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .data import load_dataset
    from .experiment import run_experiment
    from .study import load_config

    config = load_config(args.study_file)
    data, bars = None, None
    if config.verify is not None:  # a missing data set fails before the search runs
        v = config.verify
        data = load_dataset(v.data, v.input_size or config.input_size)
        if sys.stderr.isatty():
            bars = _TrainBars(v.recipe(), len(data.train))
    result = run_experiment(
        config,
        args.storage,
        study_file=args.study_file,
        device=args.device,
        workers=args.workers,
        search_progress=sys.stderr.isatty(),
        train_progress=bars,
        data=data,
    )
    s = result.search
    print(f"search: {s.trials} trials ({s.new_trials} new), front {len(s.front)}; {s.storage}")
    if result.verify is not None:
        print()
        print(format_verify(result.verify.to_dict()))
        print()
    r = result.report
    print(f"report: {r.folder / 'index.html'} ({', '.join(r.files)})")
    return 0


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got '{text}'")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got '{text}'")
    return int(text)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="timm model name, e.g. efficientnet_b0")
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        default=(3, 224, 224),
        metavar="C,H,W",
        help="input size for MACs and spatial sizes (default 3,224,224; S means 3,S,S)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="widthsearch",
        description="Search the channel widths of timm CNNs at initialization.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "inspect",
        help="show the channel groups, layers and exact costs of a timm model",
        description="Analyse a timm model (random init, no download) and print its width space: "
        "the coupled channel groups, their base widths, and exact params and MACs.",
    )
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help="print the width space as JSON")
    p.add_argument("-v", "--verbose", action="store_true", help="list every group's layers")
    p.set_defaults(func=cmd_inspect)

    from .solve import DEFAULT_MIN_WIDTH

    p = sub.add_parser(
        "reconfig",
        help="choose new widths for a timm model by one SynExp solve",
        description="Choose new channel widths for a timm model that maximize SynExp under "
        "parameter and/or MAC budgets (one geometric program), round them to a grid, and hold "
        "every budget exactly. R is a ratio of the base model (0.8) or an absolute count (4.2M, "
        "300e6; a plain number of 1000 or more is a count).",
    )
    _add_model_args(p)
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
        type=_positive_float,
        metavar="X",
        help="largest multiplier of a group's base width (preconfig default 2)",
    )
    p.add_argument(
        "--min-width",
        type=_positive_float,
        metavar="X",
        default=DEFAULT_MIN_WIDTH,
        help=f"smallest multiplier (default {DEFAULT_MIN_WIDTH:g})",
    )
    p.add_argument(
        "--divisor",
        type=_positive_int,
        default=8,
        metavar="N",
        help="widths are multiples of N (default 8)",
    )
    p.add_argument(
        "--baselines",
        default="uniform,synflow",
        metavar="LIST",
        help="comparisons: uniform, synflow (needs a params budget), or none",
    )
    p.add_argument("-o", "--output", metavar="WIDTHS.json", help="write a JSON width file")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_reconfig)

    p = sub.add_parser(
        "export",
        help="write a Python module with a timm entrypoint for a width file",
        description="Write a module (needing only torch and timm) that registers a timm model "
        "at the widths of WIDTHS.json: after importing it, timm.create_model(NAME) builds it, "
        "with any timm kwargs (num_classes, features_only, ...).",
    )
    p.add_argument("widths", metavar="WIDTHS.json", help="a width file from reconfig -o")
    p.add_argument("--py", required=True, metavar="MODULE.py", help="the module to write")
    p.add_argument("--name", help="the timm model name to register (default MODEL_ws)")
    p.set_defaults(func=cmd_export)

    from .search import DEFAULT_STORAGE

    p = sub.add_parser(
        "search",
        help="explore constraint mixes with Optuna; keep every candidate in a study",
        description="Each trial samples a constraint mix (budget ratios, width bounds, divisor, "
        "mode), re-solves the SynExp program and rounds. Objectives: log SynExp (max), params "
        "and MACs (min). Re-running resumes the study; --trials counts all its finished trials.",
    )
    p.add_argument("model", nargs="?", help="timm model name (or give --config)")
    p.add_argument("--config", metavar="STUDY.toml", help="a study file with model and ranges")
    p.add_argument("--trials", type=_positive_int, help="total finished trials (default 200)")
    p.add_argument(
        "--storage",
        metavar="URL",
        help=f"SQLite path or URL, journal:PATH, or any SQLAlchemy URL such as "
        f"postgresql://... (default {DEFAULT_STORAGE})",
    )
    p.add_argument("--study", help="study name (default: the model name)")
    p.add_argument("--workers", type=_positive_int, default=1, help="local processes (default 1)")
    p.add_argument("--timeout", type=_positive_float, metavar="S", help="stop after S seconds")
    p.add_argument("--sampler", help="tpe (default), nsga2 or random")
    p.add_argument("--seed", type=int, help="sampler seed")
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        metavar="C,H,W",
        help="input size for MACs (default 3,224,224)",
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON, no progress")
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("front", help="print the Pareto front of a search study")
    p.add_argument("study", help="study name (the model name unless --study was given)")
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument("--json", action="store_true", help="print the front as JSON")
    p.set_defaults(func=cmd_front)

    p = sub.add_parser(
        "verify",
        help="train the top configs of a study, the base and a uniform control, and compare",
        description="Train the best front trials of a study (or the given width files), the "
        "unchanged base model and a uniform-width control at the first candidate's MACs from "
        "scratch, with one recipe, seeds and data order; print top-1 and loss as mean ± std "
        "over seeds and store them in the study and a CSV. Finished runs are skipped; an "
        "interrupted run resumes from its last epoch checkpoint.",
    )
    p.add_argument("targets", nargs="+", metavar="STUDY|WIDTHS.json", help="a study or width files")
    p.add_argument(
        "--storage", metavar="URL", help=f"the study's storage (default {DEFAULT_STORAGE})"
    )
    p.add_argument("--top", type=_positive_int, default=3, help="front trials to train (default 3)")
    p.add_argument(
        "--data",
        default="digits",
        metavar="SPEC",
        help="digits (bundled, default), mnist:DIR, cifar10:DIR, cifar100:DIR, imagefolder:DIR",
    )
    p.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default 10)")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="batch size (default 64)")
    p.add_argument("--lr", type=_positive_float, default=2e-3, help="AdamW peak lr (default 2e-3)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "--input-size",
        type=parse_input_size,
        metavar="C,H,W",
        help="training input size (default: the search's)",
    )
    p.add_argument("--out", metavar="results.csv", help="results CSV (default STUDY-verify.csv)")
    p.add_argument("--json", action="store_true", help="print the results as JSON, no progress")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser(
        "report",
        help="write a study's report: index.html, pareto.png, widths.png, front.csv, front.md",
        description="Turn a stored study into one HTML page with the Pareto front, width "
        "profiles and the verification results, plus the figures and the front as CSV and "
        "Markdown. The same study gives the same files.",
    )
    p.add_argument("study", help="study name")
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument("-o", "--output", metavar="DIR", help="folder (default reports/STUDY)")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "run",
        help="search, verify and report a study file in one command (resumable)",
        description="Run the study file's search (resuming its trials), train its [verify] "
        "candidates (skipping finished runs, resuming interrupted ones) and write the report "
        "to its [report] path (default reports/STUDY).",
    )
    p.add_argument(
        "study_file", metavar="STUDY.toml", help="e.g. studies/efficientnet_b0_same_flops.toml"
    )
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument("--workers", type=_positive_int, default=1, help="search processes (default 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except WidthSearchError as exc:
        print(f"widthsearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("widthsearch: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
