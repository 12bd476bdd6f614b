"""``widthsearch run``: search, verify and report a study file in one command."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from widthsearch.errors import WidthSearchError
from widthsearch.experiment import QUICK_FOLDER, report_folder, run_experiment
from widthsearch.storage import DEFAULT_STORAGE
from widthsearch.studyfile import load_config
from widthsearch.train.data import load_dataset

from ._args import add_quick_check_args, positive_int
from .verify import format_verify, log_line, train_progress


def run(args: argparse.Namespace) -> int:

    config = load_config(args.study_file)
    data, bars, verify = None, None, None
    if config.verify is not None:  # a missing data set fails before the search runs
        verify = replace(config.verify, max_steps=args.max_steps, train_subset=args.train_subset)
        recipe = verify.recipe()
        data = load_dataset(verify.data, verify.input_size or config.input_size)
        bars = train_progress(recipe, len(data.train))
    folder = args.out or report_folder(config, verify)
    for parent in (Path(folder), *Path(folder).parents):  # before any work
        if parent.exists() and not parent.is_dir():
            raise WidthSearchError(f"-o {folder}: {parent} is a file; give -o a folder")
    result = run_experiment(
        config,
        args.storage,
        study_file=args.study_file,
        device=args.device,
        workers=args.workers,
        search_progress=True,  # a bar on a terminal, else a line every few seconds
        train_progress=bars,
        data=data,
        verify=verify,
        log=log_line,
        folder=folder,
        replace=args.replace,
    )
    s = result.search
    held = " (it held them already: raise [search] trials to add more)" if not s.new_trials else ""
    print(
        f"search: {s.trials} trials ({s.new_trials} new{held}), front {len(s.front)}; {s.storage}"
    )
    if result.verify is not None:
        print()
        print(format_verify(result.verify.to_dict()))
        print()
    r = result.report
    print(f"report: {r.folder / 'index.html'} ({', '.join(r.files)})")
    if args.out is None and Path(folder).is_relative_to(QUICK_FOLDER):
        print(
            f"(a quick check: written to {folder}, not to the study's report folder "
            f"{report_folder(config)}; -o DIR to choose)"
        )
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``run`` command."""

    p = sub.add_parser(
        "run",
        help="search, verify and report a study file in one command (resumable)",
        description="Run the study file's search (resuming its trials), train its [verify] "
        "candidates (skipping finished runs, resuming interrupted ones) and write the report "
        "to -o DIR, else its [report] path (default reports/STUDY); a quick check (--max-steps, "
        f"--train-subset) goes to {QUICK_FOLDER}/STUDY unless -o says otherwise. A report is "
        "never replaced by one of a smaller scale (fewer trials, epochs or seeds, or a quick "
        "check over a full run) unless --replace is given: that is refused before any work.",
    )
    p.add_argument(
        "study_file", metavar="STUDY.toml", help="e.g. studies/efficientnet_b0_same_flops.toml"
    )
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument("--workers", type=positive_int, default=1, help="search processes (default 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument(
        "-o",
        "--out",
        metavar="DIR",
        help=f"report folder (default: the [report] path, else reports/STUDY; quick checks: "
        f"{QUICK_FOLDER}/STUDY)",
    )
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace a report of a larger scale in the folder (refused otherwise)",
    )
    add_quick_check_args(p)
    p.set_defaults(func=run)
