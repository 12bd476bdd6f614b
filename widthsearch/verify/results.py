"""A verification's results: one row per run, in a CSV and in the studies.

Each run's result row (:data:`CSV_FIELDS`) is set on its trial before the trial ends
(:mod:`widthsearch.verify.queue`); once a verification ends, the rows get the seed counts,
paired differences, verdicts and measured latency of their candidate (:func:`annotate_rows`) and
go to the results CSV, and the summary ``verify`` printed goes to the search study's
:data:`widthsearch.verify.attrs.VERIFY` attribute, which reports read
(:func:`stored_verifications`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch.errors import VerifyError
from widthsearch.search import widths_key
from widthsearch.verify.attrs import ROWS, SUMMARY, VERIFICATION_STUDY, VERIFY

if TYPE_CHECKING:
    import optuna
    import torch

    from widthsearch.train.loop import TrainResult
    from widthsearch.verify.plan import Candidate

CSV_FIELDS = (
    "model",
    "candidate",
    "kind",
    "trial",
    "seed",
    "top1",
    "loss",
    "epochs",
    "steps",
    "wall_seconds",
    "images_per_second",
    "latency_ms",
    "latency_spread",
    "latency_device",
    "params",
    "macs",
    "search_params",
    "search_macs",
    "log_synexp",
    "data",
    "input_size",
    "device",
    "recipe",
    "recipe_key",
    "widths_key",
    "n",
    "top1_vs_base",
    "top1_vs_control",
    "top1_vs_random",
    "verdict_vs_base",
    "verdict_vs_control",
    "verdict_vs_random",
    "state",
    "pruned_at_epoch",
    "shared_from",
)
"""Columns of the results CSV: one row per candidate and seed. ``n`` (completed seeds of the
candidate), the paired differences of this seed's top-1 to the base's, the control's and the
mean of the random-shape controls', and the candidate's verdicts (:mod:`widthsearch.verify.verdict`)
are filled in once a verification ends. ``state`` is ``complete`` or ``pruned``; a pruned run's
top-1, loss and epochs are those of the epoch it was stopped at (``pruned_at_epoch``), and it
has no paired differences. ``latency_ms`` is the model's measured latency as trained, timed on
``latency_device`` (:attr:`widthsearch.verify.summary.VerifyReport.latency_device`), with
``latency_spread`` (interquartile range over the median), filled in with the verdicts.
``shared_from`` names the verification that trained a run this one took over (same recipe
key, widths and seed), empty for runs trained here."""

DIFFS = ("top1_vs_base", "top1_vs_control", "top1_vs_random")

RowId = tuple[str, str, int]
"""A result's recipe key, widths key and seed."""


def read_results_csv(path: Path) -> list[dict[str, str]]:
    """Rows of an earlier results CSV (empty when there is none).

    Raises:
        VerifyError: the file exists but is not a widthsearch results CSV.
    """
    if not path.exists():
        return []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise VerifyError(f"cannot read results file {path} ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = {"recipe_key", "widths_key", "seed", "top1"} - set(reader.fieldnames or ())
    if missing:
        raise VerifyError(
            f"{path} is not a widthsearch verify CSV (no {', '.join(sorted(missing))} column); "
            "give another --out"
        )
    return list(reader)


def write_results_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def row_id(row: dict[str, Any]) -> RowId:
    return str(row["recipe_key"]), str(row["widths_key"]), int(row["seed"])


def numeric_row(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row (all strings) with its numbers typed again."""
    out = dict(row)
    ints = ("seed", "epochs", "steps", "params", "macs", "search_params", "search_macs", "n")
    for k in (*ints, "pruned_at_epoch"):
        if out.get(k) not in (None, ""):
            out[k] = int(out[k])
    floats: tuple[str, ...] = ("top1", "loss", "wall_seconds", "images_per_second", "log_synexp")
    floats += ("latency_ms", "latency_spread")
    for k in floats + DIFFS:
        if out.get(k) not in (None, ""):
            out[k] = float(out[k])
    out["trial"] = None if out.get("trial") in (None, "", "None") else int(out["trial"])
    return out


def result_row(
    cand: Candidate,
    seed: int,
    result: TrainResult,
    counted: tuple[int, int],
    settings: dict[str, Any],
    device: torch.device,
) -> dict[str, Any]:
    return {
        "model": settings["model"],
        "candidate": cand.label,
        "kind": cand.kind,
        "trial": cand.trial,
        "seed": seed,
        "top1": result.top1,
        "loss": result.loss,
        "epochs": result.epochs,
        "steps": result.steps,
        "wall_seconds": result.wall_seconds,
        "images_per_second": result.images_per_second,
        "params": counted[0],
        "macs": counted[1],
        "search_params": cand.params,
        "search_macs": cand.macs,
        "log_synexp": cand.log_synexp,
        "data": settings["data"],
        "input_size": "x".join(map(str, settings["input_size"])),
        "device": str(device),
        "recipe": json.dumps(settings["recipe"], sort_keys=True),
        "recipe_key": settings["recipe_key"],
        "widths_key": cand.key,
        "resumed_from": result.resumed_from,
    }


def annotate_rows(
    rows: dict[RowId, dict[str, Any]],
    key: str,
    results: list[dict[str, Any]],
    device: str | None = None,
) -> None:
    """Write each result's seed count, paired differences, verdicts and measured latency into
    its rows."""
    for r in results:
        if r.get("same_as"):
            continue
        wk = widths_key(r["widths"])
        timed = r.get("latency_ms") is not None
        for seed in [p["seed"] for p in r.get("pruned") or []] + list(r["seeds"]):
            row = rows[(key, wk, seed)]
            row["latency_ms"] = r["latency_ms"] if timed else ""
            row["latency_spread"] = r["latency_spread"] if timed else ""
            row["latency_device"] = device if timed else ""
        for seed in r["seeds"]:
            row = rows[(key, wk, seed)]
            row["n"] = r["n"]
            for name in ("base", "control", "random"):
                v = r.get(f"vs_{name}")
                diffs = dict(zip(v["seeds"], v["differences"], strict=True)) if v else {}
                row[f"top1_vs_{name}"] = diffs.get(seed, "")
                row[f"verdict_vs_{name}"] = v["label"] if v else ""


def order_rows(
    csv_rows: Sequence[dict[str, Any]], rows: dict[RowId, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The results file's rows: those it had keep their places (ours updated in place;
    another study's, another recipe's or a seed not asked for this time kept as they are: one
    file can collect several verifications, and a rerun rewrites it unchanged); new rows
    follow, sorted."""
    ordered = [rows.get(row_id(r), r) for r in csv_rows]
    placed = {row_id(r) for r in csv_rows}
    ordered += sorted(
        (r for rid, r in rows.items() if rid not in placed),
        key=lambda r: (r["widths_key"], int(r["seed"])),
    )
    return ordered


def study_rows(study: optuna.Study | None) -> list[dict[str, Any]]:
    """Result rows older versions kept in the search study's ``verify`` attribute (imported
    into the verification study, not retrained)."""
    if study is None:
        return []
    stored = study.user_attrs.get(VERIFY) or {}
    return [row for runs in stored.values() for row in runs.get(ROWS, [])]


def save_summary(
    study: optuna.Study,
    settings: dict[str, Any],
    verification: str,
    summary: dict[str, Any],
    match: str = "macs",
) -> None:
    """The search study's ``verify`` attribute: per recipe key (and ``+params`` when the
    controls match params) its settings, the name of its verification study and the summary
    ``verify`` printed last (which reports read). Rows imported from an older version's
    attribute stay there."""
    stored = dict(study.user_attrs.get(VERIFY) or {})
    name = settings["recipe_key"] + ("" if match == "macs" else f"+{match}")
    old = stored.get(name) or {}
    entry = {**settings, VERIFICATION_STUDY: verification, SUMMARY: summary}
    if old.get(ROWS):
        entry[ROWS] = old[ROWS]
    stored[name] = entry
    study.set_user_attr(VERIFY, stored)


def stored_verifications(study: optuna.Study) -> list[dict[str, Any]]:
    """Summaries of the verification runs a study holds (finished runs only), oldest first."""
    stored = study.user_attrs.get(VERIFY) or {}
    return [v[SUMMARY] for v in stored.values() if v.get(SUMMARY)]


__all__ = ["CSV_FIELDS", "read_results_csv", "stored_verifications", "write_results_csv"]
