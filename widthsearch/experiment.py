"""A whole experiment from a study file: search, then verify, then report, resumable.

Each step resumes on its own: the search runs only the trials the study still lacks, the
verification skips finished runs and continues interrupted ones from their last epoch
checkpoint, and the report is rewritten from what the study holds.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from widthsearch.report.page import default_folder, write_report
from widthsearch.report.scale import ReportScale, check_replace
from widthsearch.search.run import run_search
from widthsearch.train.data import load_dataset
from widthsearch.verify import Execution, plan_from_study, run_verify
from widthsearch.verify.prepare import check_training_output

if TYPE_CHECKING:
    from widthsearch.report.page import ReportResult
    from widthsearch.search.run import SearchResult
    from widthsearch.studyfile import StudyConfig
    from widthsearch.train.data import Dataset
    from widthsearch.verify import Log, Progress, VerifyReport, VerifySettings

CHECKPOINTS = Path(".widthsearch") / "checkpoints"
"""Where interrupted verification runs keep their epoch checkpoints (not in the report)."""
QUICK_FOLDER = Path("runs") / "quick"
"""Where a quick check's report goes unless told otherwise (``runs/`` is git-ignored): never
into the study's report folder, whose page a one-step check would replace."""


@dataclass(frozen=True)
class ExperimentResult:
    search: SearchResult
    verify: VerifyReport | None
    report: ReportResult


def report_folder(config: StudyConfig, verify: VerifySettings | None = None) -> Path:
    """Where ``run`` writes the report unless told: the study file's ``[report]`` path, else
    ``reports/STUDY``; for a quick check (``verify`` with ``max_steps`` or ``train_subset``)
    ``runs/quick/STUDY``, so that a smoke test never replaces a report."""

    if verify is not None and (verify.max_steps is not None or verify.train_subset is not None):
        return QUICK_FOLDER / config.name
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
    folder: str | os.PathLike[str] | None = None,
    replace: bool = False,
) -> ExperimentResult:
    """Search ``config``, verify its top candidates as its ``[verify]`` section says (if it
    has one), and write the report to ``folder`` (default :func:`report_folder`: the
    ``[report]`` path, ``reports/STUDY``, or ``runs/quick/STUDY`` for a quick check).

    ``train_progress`` and ``log`` are :func:`widthsearch.verify.run_verify`'s progress
    factory and message sink; ``data`` the ``[verify]`` data set when the caller has loaded it
    already; ``verify`` replaces the section (a quick check with ``max_steps``, say).

    Raises:
        DataError, ModelOutputError: the ``[verify]`` data set cannot be read, or training
            cannot read the model's output (:mod:`widthsearch.train.output`); both before the
            search.
        ReportScaleError: ``folder`` holds a report of a larger scale than this experiment's
            (more trials, epochs or seeds, or a full run where this is a quick check) and
            ``replace`` is False. Checked before the search and again after it, before
            anything is written into ``folder``.
    """

    v = (verify or config.verify) if config.verify is not None else None
    out = Path(folder) if folder is not None else report_folder(config, v)
    planned = None if v is None else {"recipe": _recipe_scale(v), "seeds": list(v.seeds)}
    # before the search, all but the trials (the study may hold more than config.trials)
    check_replace(out, ReportScale.of(None, planned), replace=replace)
    if v is not None:  # no data set, or a model training cannot read: said before the search
        size = v.input_size or config.input_size
        data = data if data is not None else load_dataset(v.data, size)
        check_training_output(
            config.model, config.timm_kwargs, size, data.num_classes, v.stem, v.output
        )
    search = run_search(config, storage_url, workers=workers, progress=search_progress)
    check_replace(out, ReportScale.of(search.trials, planned), replace=replace)
    folder = out
    verified = None
    if v is not None:
        plan = plan_from_study(config.name, storage_url, top=v.top)
        size = v.input_size or config.input_size
        assert data is not None  # loaded before the search
        folder.mkdir(parents=True, exist_ok=True)
        execution = Execution(device=device, out=folder / "verify.csv", checkpoints=CHECKPOINTS)
        verified = run_verify(
            plan,
            data,
            dataclasses.replace(v, input_size=size),
            execution,
            progress=train_progress,
            log=log,
        )
    # checked above, before verify.csv was written: the report follows what was trained
    report = write_report(config.name, storage_url, folder, study_file=study_file, replace=True)
    return ExperimentResult(search, verified, report)


def _recipe_scale(v: VerifySettings) -> dict[str, int | None]:
    """The recipe figures :class:`ReportScale` compares, without building the recipe."""
    return {"epochs": v.epochs, "max_steps": v.max_steps, "train_subset": v.train_subset}


__all__ = ["CHECKPOINTS", "QUICK_FOLDER", "ExperimentResult", "report_folder", "run_experiment"]
