"""Report: one HTML page per study, with fronts, width profiles and verdicts."""

from widthsearch.report.page import (
    FILES,
    ReportResult,
    default_folder,
    write_report,
)

__all__ = [
    "FILES",
    "ReportResult",
    "default_folder",
    "write_report",
]
