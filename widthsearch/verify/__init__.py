"""Verify: train what a search proposes against controls, with successive halving, workers and
paired verdicts.

The modules follow a verification through: what to train (:mod:`~widthsearch.verify.plan`) and
with what recipe and how (:mod:`~widthsearch.verify.settings`); the queue of runs on an Optuna
study (:mod:`~widthsearch.verify.queue`, :mod:`~widthsearch.verify.pruners`, its stored names
in :mod:`~widthsearch.verify.attrs`); the models as trained
(:mod:`~widthsearch.verify.latency`); the time estimate (:mod:`~widthsearch.verify.estimate`);
training a run (:mod:`~widthsearch.verify.objective`, by :mod:`~widthsearch.verify.workers`);
the results (:mod:`~widthsearch.verify.results`), the summary and its verdicts
(:mod:`~widthsearch.verify.summary`, :mod:`~widthsearch.verify.verdict`); and
:func:`~widthsearch.verify.run.run_verify`, which runs them in order.
"""

from widthsearch.errors import QueueError, VerifyError
from widthsearch.verify.estimate import makespan
from widthsearch.verify.job import Job
from widthsearch.verify.latency import (
    count_trained_model,
    latency_device,
    latency_notes,
    measure_trained_latency,
    model_builder,
)
from widthsearch.verify.plan import (
    Candidate,
    Plan,
    plan_from_study,
    plan_from_width_files,
    recipe_key,
    training_setting,
    with_controls,
)
from widthsearch.verify.progress import Log, Progress, epoch_lines
from widthsearch.verify.pruners import (
    AUTO_SHA_FROM,
    PRUNERS,
    make_pruner,
    min_resource,
    resolve_pruner,
)
from widthsearch.verify.queue import (
    Run,
    Skip,
    candidate_of,
    enqueue,
    finished,
    open_verification,
    result_row,
    run_id,
    run_order,
    verification_name,
    work,
)
from widthsearch.verify.recovery import reap, recover
from widthsearch.verify.results import CSV_FIELDS, read_results_csv, stored_verifications
from widthsearch.verify.run import run_verify
from widthsearch.verify.settings import LATENCY_RUNS, MATCHES, Execution, VerifySettings
from widthsearch.verify.summary import (
    Summary,
    VerifyReport,
    add_verdicts,
    cost_notes,
    mean_std,
    pruned_text,
    quick_check,
    verdict_lines,
    verdict_text,
)
from widthsearch.verify.verdict import (
    LABELS,
    LEVEL,
    Verdict,
    paired,
    t_quantile,
)

__all__ = [
    "AUTO_SHA_FROM",
    "CSV_FIELDS",
    "Candidate",
    "Execution",
    "Job",
    "LABELS",
    "LATENCY_RUNS",
    "LEVEL",
    "Log",
    "MATCHES",
    "PRUNERS",
    "Plan",
    "Progress",
    "QueueError",
    "Run",
    "Skip",
    "Summary",
    "Verdict",
    "VerifyError",
    "VerifyReport",
    "VerifySettings",
    "add_verdicts",
    "candidate_of",
    "cost_notes",
    "count_trained_model",
    "enqueue",
    "epoch_lines",
    "finished",
    "latency_device",
    "latency_notes",
    "make_pruner",
    "makespan",
    "mean_std",
    "measure_trained_latency",
    "min_resource",
    "model_builder",
    "open_verification",
    "paired",
    "plan_from_study",
    "plan_from_width_files",
    "pruned_text",
    "quick_check",
    "read_results_csv",
    "reap",
    "recipe_key",
    "recover",
    "resolve_pruner",
    "result_row",
    "run_id",
    "run_order",
    "run_verify",
    "stored_verifications",
    "t_quantile",
    "training_setting",
    "verdict_lines",
    "verdict_text",
    "verification_name",
    "with_controls",
    "work",
]
