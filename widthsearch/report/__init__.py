"""Report: one HTML page per study, with fronts, width profiles and verdicts.

:mod:`~widthsearch.report.page` assembles the page and writes the files;
:mod:`~widthsearch.report.figures` draws them, :mod:`~widthsearch.report.front` tabulates the
front, :mod:`~widthsearch.report.verification` writes the verification section and
:mod:`~widthsearch.report.reproduce` the commands that rebuild the report.
"""

from widthsearch.report.page import (
    FILES,
    ReportResult,
    default_folder,
    write_report,
)
from widthsearch.report.reproduce import (
    reproduce_commands,
    shown_storage,
    study_toml,
)

__all__ = [
    "FILES",
    "ReportResult",
    "default_folder",
    "reproduce_commands",
    "shown_storage",
    "study_toml",
    "write_report",
]
