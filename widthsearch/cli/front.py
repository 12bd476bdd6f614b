"""``widthsearch front``: the Pareto front of a stored search study."""

from __future__ import annotations

import argparse
import json
from typing import Any

from widthsearch._io import check_output_path
from widthsearch.errors import WidthSearchError
from widthsearch.report.truth import annotate_front, load_truth
from widthsearch.search.front import DEFAULT_ROWS, EPS_STEPS, load_front
from widthsearch.search.trial_file import save_trial_width_file, trial_result
from widthsearch.storage import DEFAULT_STORAGE

from ._args import nonnegative_int, positive_int
from .reconfig import format_result
from .search import format_front


def non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got '{text}'")
    return value


def run_trial(args: argparse.Namespace) -> int:
    """``--trial N``: that trial's widths, budgets and costs; ``-o`` writes its width file."""
    if args.output:
        check_output_path(args.output, "-o")
        result = save_trial_width_file(args.output, args.study, args.storage, args.trial)
    else:
        result, _ = trial_result(args.study, args.storage, args.trial)
    info = result.to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"trial {args.trial} of study '{args.study}'")
    lines = format_result(info).splitlines()
    gain = f"log SynExp gain over the base model: {info['log_synexp_gain']:+.2f}"
    # a trial keeps its rounded widths only: no continuous optimum to compare with
    print("\n".join(f"{gain} (the trial's widths)" if x.startswith(gain) else x for x in lines))
    if args.output:
        print(
            f"widths written to {args.output} (for export, verify and create_model, as from "
            "reconfig -o)"
        )
    return 0


def run(args: argparse.Namespace) -> int:
    truth = load_truth(args.truth) if args.truth else None  # a bad table fails before reading

    if args.trial is not None:
        return run_trial(args)
    if args.output:
        raise WidthSearchError("-o writes one trial's width file: give --trial N (see `front`)")
    eps = 0.0 if args.all else args.eps
    info = load_front(args.study, args.storage, eps=eps, rows=args.rows)
    if truth is not None:
        info = annotate_front(info, truth)
    print(json.dumps(info, indent=2) if args.json else format_front(info))
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``front`` command."""

    p = sub.add_parser(
        "front",
        help="print the Pareto front of a search study (thinned; --all for every point)",
        description="Print a stored study's Pareto front in (max log SynExp, min params, min "
        "MACs, and min predicted latency where the study has a latency model). Much of a study "
        "is on it (each trial is the optimum of its own budgets), so the table is thinned: the "
        "costs in relative steps of E, the best log SynExp in each, and a point only where no "
        "step cheaper in every cost does as well; every point left out has a shown one within "
        "1+E times each of its costs with at least its log SynExp. By default E is the finest "
        f"of {', '.join(f'{e:g}' for e in EPS_STEPS)} that fits in --rows. --json and the "
        "report's front.csv hold the whole front. --trial N -o WIDTHS.json writes one trial's "
        "width file (its exact widths, budgets and costs) for export, verify and create_model. "
        "Only reads the study: creates no storage or study.",
    )
    p.add_argument("study", help="study name (the model name unless --study was given)")
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument(
        "--eps",
        type=non_negative_float,
        metavar="E",
        help="relative cost step of the thinned table, e.g. 0.1 (0: every point)",
    )
    p.add_argument(
        "--rows",
        type=positive_int,
        default=DEFAULT_ROWS,
        metavar="N",
        help=f"without --eps: the finest step that shows at most N rows (default {DEFAULT_ROWS})",
    )
    p.add_argument("--all", action="store_true", help="print every front point (--eps 0)")
    p.add_argument(
        "--trial",
        type=nonnegative_int,
        metavar="N",
        help="show trial N's widths, budgets and costs (with -o: write its width file)",
    )
    p.add_argument(
        "-o",
        "--output",
        metavar="WIDTHS.json",
        help="with --trial: write its width file, which export, verify and create_model take",
    )
    p.add_argument(
        "--truth",
        metavar="FILE",
        help="a ground-truth table (JSON: width code -> accuracy, such as Channel-Bench-Macro's "
        "Results_ResNet.json): show each point's table accuracy where its widths lie on the "
        "table's grid",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the whole front (with --trial: the trial) as JSON",
    )
    p.set_defaults(func=run)
