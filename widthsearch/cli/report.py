"""``widthsearch report``: a study as one HTML page with its figures and tables."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from widthsearch.errors import WidthSearchError
from widthsearch.report import default_folder, write_report
from widthsearch.report.truth import load_truth
from widthsearch.search import DEFAULT_STORAGE


def run(args: argparse.Namespace) -> int:
    truth = load_truth(args.truth) if args.truth else None  # a bad table fails before writing
    folder = Path(args.output) if args.output else default_folder(args.study)
    for parent in (folder, *folder.parents):  # checked before anything is read or written
        if parent.exists() and not parent.is_dir():
            raise WidthSearchError(
                f"-o {folder}: {parent} is a file, not a folder; give -o a folder for the "
                "report's files"
            )
    result = write_report(args.study, args.storage, folder, replace=args.replace, truth=truth)
    print(
        f"wrote {', '.join(result.files)} to {result.folder}/ (front: {result.front_size} "
        f"trials, {result.verified} verification run(s))"
    )
    return 0


def add_parser(sub: Any) -> None:
    """Register the ``report`` command."""

    p = sub.add_parser(
        "report",
        help="write a study's report: index.html, pareto.png, widths.png, front.csv, front.md",
        description="Turn a stored study into one HTML page with the Pareto front, width "
        "profiles and the verification results, plus the figures and the front as CSV and "
        "Markdown. The same study gives the same files. Only reads the study: a storage or "
        "study that does not exist is an error, never created. A report of a larger scale in the "
        "folder is not replaced without --replace.",
    )
    p.add_argument("study", help="study name")
    p.add_argument("--storage", metavar="URL", help=f"as for search (default {DEFAULT_STORAGE})")
    p.add_argument("-o", "--output", metavar="DIR", help="folder (default reports/STUDY)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="replace a report of a larger scale (more trials, epochs or seeds, a full run "
        "where this is a quick check) in the folder; refused otherwise",
    )
    p.add_argument(
        "--truth",
        metavar="FILE",
        help="a ground-truth table (JSON: width code -> accuracy, such as Channel-Bench-Macro's "
        "Results_MobileNet.json): add each front trial's table accuracy to the front tables",
    )
    p.set_defaults(func=run)
