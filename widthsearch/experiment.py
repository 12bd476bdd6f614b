"""A whole experiment from a study file: search, then verify, then report, resumable.

Each step resumes on its own: the search runs only the trials the study still lacks, the
verification skips finished runs and continues interrupted ones from their last epoch
checkpoint, and the report is rewritten from what the study holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from widthsearch.report.page import default_folder, write_report
from widthsearch.search.run import run_search
from widthsearch.train.data import load_dataset
from widthsearch.verify import Execution, plan_from_study, run_verify

if TYPE_CHECKING:
    from widthsearch.report.page import ReportResult
    from widthsearch.search.run import SearchResult
    from widthsearch.studyfile import StudyConfig
    from widthsearch.train.data import Dataset
    from widthsearch.verify import Log, Progress, VerifyReport, VerifySettings

CHECKPOINTS = Path(".widthsearch") / "checkpoints"
"""Where interrupted verification runs keep their epoch checkpoints (not in the report)."""


@dataclass(frozen=True)
class ExperimentResult:
    search: SearchResult
    verify: VerifyReport | None
    report: ReportResult


def report_folder(config: StudyConfig) -> Path:
    """Where ``run`` writes the report: the study file's ``[report]`` path, else
    ``reports/STUDY``."""

    return Path(config.report) if config.report else default_folder(config.name)


def run_experiment(
    config: StudyConfig,
    storage_url: str | None = None,
    *,
    study_file: str | os.PathLike | None = None,
    device: str = "auto",
    workers: int = 1,
    search_progress: bool = False,
    train_progress: Progress | None = None,
    data: Dataset | None = None,
    verify: VerifySettings | None = None,
    log: Log | None = None,
) -> ExperimentResult:
    """Search ``config``, verify its top candidates as its ``[verify]`` section says (if it
    has one), and write the report to its ``[report]`` path (default ``reports/STUDY``).

    ``train_progress`` and ``log`` are :func:`widthsearch.verify.run_verify`'s progress
    factory and message sink; ``data`` the ``[verify]`` data set when the caller has loaded it
    already; ``verify`` replaces the section (a quick check with ``max_steps``, say).
    """

    folder = report_folder(config)
    search = run_search(config, storage_url, workers=workers, progress=search_progress)
    verified = None
    if config.verify is not None:
        v = verify or config.verify
        plan = plan_from_study(config.name, storage_url, top=v.top)
        size = v.input_size or config.input_size
        data = data if data is not None else load_dataset(v.data, size)
        folder.mkdir(parents=True, exist_ok=True)
        execution = Execution(device=device, out=folder / "verify.csv", checkpoints=CHECKPOINTS)
        verified = run_verify(
            plan,
            data,
            replace(v, input_size=size),
            execution,
            progress=train_progress,
            log=log,
        )
    report = write_report(config.name, storage_url, folder, study_file=study_file)
    return ExperimentResult(search, verified, report)


__all__ = ["CHECKPOINTS", "ExperimentResult", "report_folder", "run_experiment"]
