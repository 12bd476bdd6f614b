"""Report: one HTML page per study, with fronts, width profiles and verdicts.

:mod:`~widthsearch.report.page` assembles the page and writes the files;
:mod:`~widthsearch.report.figures` draws them, :mod:`~widthsearch.report.front` tabulates the
front, :mod:`~widthsearch.report.verification` writes the verification section and
:mod:`~widthsearch.report.reproduce` the commands that rebuild the report, and
:mod:`~widthsearch.report.scale` keeps a smaller report from replacing a larger one.
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
from widthsearch.report.scale import ReportScale, check_replace, read_scale

__all__ = [
    "FILES",
    "ReportResult",
    "ReportScale",
    "check_replace",
    "default_folder",
    "read_scale",
    "reproduce_commands",
    "shown_storage",
    "study_toml",
    "write_report",
]
