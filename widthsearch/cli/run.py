"""``widthsearch run``: search, verify and report a study file in one command."""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from widthsearch.experiment import run_experiment
from widthsearch.search.storage import DEFAULT_STORAGE
from widthsearch.studyfile import load_config
from widthsearch.train.data import load_dataset

from ._args import positive_int
from .verify import add_quick_check_args, format_verify, log_line, train_progress


def run(args: argparse.Namespace) -> int:

    config = load_config(args.study_file)
    data, bars, verify = None, None, None
    if config.verify is not None:  # a missing data set fails before the search runs
        verify = replace(config.verify, max_steps=args.max_steps, train_subset=args.train_subset)
        recipe = verify.recipe()
        data = load_dataset(verify.data, verify.input_size or config.input_size)
        bars = train_progress(recipe, len(data.train))
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
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``run`` command."""

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
    p.add_argument("--workers", type=positive_int, default=1, help="search processes (default 1)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_quick_check_args(p)
    p.set_defaults(func=run)
