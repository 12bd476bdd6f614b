"""Verification: train what the search proposes next to what it replaces, with one recipe.

Candidates come from a study's Pareto front (:func:`plan_from_study`) or from width files
(:func:`plan_from_width_files`). Every plan also holds the unchanged **base** model and a
**uniform control**: one width multiplier on every free group (timm's ``channel_multiplier``),
the largest whose MACs stay within the first candidate's, on the same rounding grid. Width
vectors that coincide (a control that rounds to the base, say) are trained once.

All are trained from scratch by :func:`widthsearch.train.train` with the same recipe, seeds and
data order. A result is identified by the model, data, training input size and recipe (its
``recipe_key``), the widths and the seed. Each (candidate, seed) run is a trial of the
verification study of that recipe key, in the search's storage (:mod:`widthsearch.verify.queue`):
enqueued once, claimed by workers (``workers`` processes here, or ``verify`` on other machines
with the same storage), reporting validation top-1 per epoch so that a pruner (successive
halving by default from :data:`widthsearch.verify.queue.AUTO_SHA_FROM` candidates on) stops weak
candidates early; the base and the control always train to the end. A re-run skips finished
runs. The results also go to a CSV (one row per run, pruned runs marked), and the summary
``verify`` prints, with its verdicts, to the search study's ``verify`` attribute, which
reports read.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch.errors import VerifyError, WidthSearchError
from widthsearch.hardware.bench import MIN_RUNS as LATENCY_MIN_RUNS
from widthsearch.search import load_front, open_storage, stored_latency, widths_key
from widthsearch.solve.synexp import log_synexp
from widthsearch.train.loop import Recipe, TrainResult, step_seconds, train

if TYPE_CHECKING:
    import optuna
    import torch
    from torch import nn

    from widthsearch.hardware.timing import Device
    from widthsearch.space.cost import Posynomial
    from widthsearch.space.width_space import WidthSpace
    from widthsearch.train.data import Dataset

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
``latency_device`` (:attr:`VerifyReport.latency_device`), with ``latency_spread`` (interquartile
range over the median), filled in with the verdicts. ``shared_from`` names the verification
that trained a run this one took over (same recipe key, widths and seed), empty for runs
trained here."""


@dataclass(frozen=True)
class Candidate:
    """A width vector to train, with its costs at the search's input size."""

    label: str
    kind: str
    """candidate, base or control."""
    widths: tuple[int, ...]
    params: int
    macs: int
    log_synexp: float
    """Gain over the base model."""
    trial: int | None = None

    @property
    def key(self) -> str:
        return widths_key(self.widths)


@dataclass(frozen=True)
class Plan:
    """What to train: candidates, base and control of one model's width space."""

    space: WidthSpace
    candidates: tuple[Candidate, ...]
    pick: str
    """How the candidates were chosen, in words."""
    study: optuna.Study | None = None
    divisor: int = 8
    """The rounding grid of the candidates, which the control is rounded to too."""
    storage_url: str | None = None
    """The study's storage, which workers open for themselves."""


def _candidate(space: WidthSpace, label: str, kind: str, widths, trial=None) -> Candidate:
    widths = tuple(int(w) for w in widths)
    gain = log_synexp(space, widths) - log_synexp(space, space.base_widths)
    return Candidate(label, kind, widths, space.params(widths), space.macs(widths), gain, trial)


def with_controls(
    space: WidthSpace,
    picked: Sequence[Candidate],
    divisor: int,
    pick: str,
    *,
    setting: WidthSpace | None = None,
    random: int = 0,
    match: str = "macs",
) -> Plan:
    """``picked`` plus the base model, the uniform control (the largest single width
    multiplier whose MACs stay within the first candidate's) and ``random`` random-shape
    controls at those MACs (:func:`widthsearch.solve.baselines.random_widths`, shapes 0, 1, ...),
    all counted in ``setting``. ``match="params"`` matches the controls to the candidate's
    params instead: the fair comparison for a params budget, where the candidate may spend
    more MACs than a control of equal MACs would let it.

    A random shape draws each free group's multiplier log-uniformly between the smallest and
    the largest multiplier of the first candidate (so it is as uneven as the candidate), then
    scales the whole vector to the candidate's MACs; whether the candidate beats these says
    whether SynExp picks better than chance at equal cost.

    ``setting`` is the width space as the models are trained (training input size, the data
    set's classes); squeeze-excite convs and the classifier do not shrink with the input, so a
    control matched at the search's input size may cost another ratio there. Default: ``space``.
    """
    from widthsearch.solve.baselines import random_widths, uniform
    from widthsearch.solve.program import Budgets
    from widthsearch.solve.rounding import width_grid

    if not picked:
        raise VerifyError("no candidates to verify")
    if match not in MATCHES:
        raise VerifyError(f"controls match macs or params, not {match!r}")
    setting = setting or space
    if len(setting.groups) != len(space.groups):
        raise VerifyError(f"{space.model} has other channel groups at the training setting")

    def move(widths: Sequence[int], to: WidthSpace) -> tuple[int, ...]:
        """Free widths kept, fixed ones (input channels, classes) those of ``to``."""
        return tuple(
            b if g.fixed else w for g, w, b in zip(to.groups, widths, to.base_widths, strict=True)
        )

    base = _candidate(space, "base", "base", space.base_widths)
    lo, hi = 0.05, 4.0
    grid = width_grid(setting, divisor=divisor, min_width=lo, max_width=hi)
    first = move(picked[0].widths, setting)
    if match == "params":
        budget = Budgets(params=setting.params(first))
    else:
        budget = Budgets(macs=setting.macs(first))
    bl = uniform(setting, budget, grid, min_width=lo, max_width=hi)
    items = [*picked, base]
    if bl.widths is not None:
        mult = bl.description.rsplit(" ", 1)[-1]
        items.append(_candidate(space, f"uniform {mult}", "control", move(bl.widths, space)))
    if random:
        rlo, rhi = shape_range(space, picked[0].widths)
        rgrid = width_grid(setting, divisor=divisor, min_width=rlo, max_width=rhi)
        for i in range(random):
            r = random_widths(setting, budget, rgrid, i, min_width=rlo, max_width=rhi)
            if r.widths is not None:
                items.append(_candidate(space, f"random {i}", "random", move(r.widths, space)))
    return Plan(space, tuple(items), pick, divisor=divisor)


MATCHES = ("macs", "params")
"""What the uniform and random controls are matched to: the first candidate's MACs (default)
or its params, as trained."""


def shape_range(space: WidthSpace, widths: Sequence[int]) -> tuple[float, float]:
    """The smallest and largest multiplier of ``widths`` over the free groups, widened to hold
    1 and to span at least 4x (downwards), so that a random shape in this range is uneven; a
    PreCrop candidate (no multiplier above 1) gives random shapes that do not widen either."""
    ratios = [w / g.width for g, w in zip(space.groups, widths, strict=True) if not g.fixed]
    hi = max([1.0, *ratios])
    return min([1.0, hi / 4, *ratios]), hi


def training_setting(
    space: WidthSpace, input_size: Sequence[int], num_classes: int, stem: str = "timm"
):
    """The width space of ``space``'s model as verification trains it: at the training input
    size, with the data set's classes and the recipe's stem policy."""
    from widthsearch.space.width_space import WidthSpace, create_timm_model
    from widthsearch.train.stem import apply_stem

    kwargs = {**space.timm_kwargs, "num_classes": num_classes}
    if stem == "timm":
        return WidthSpace.from_timm(space.model, input_size=tuple(input_size), **kwargs)
    import torch

    model = apply_stem(create_timm_model(space.model, **kwargs), stem, input_size)
    return WidthSpace.from_module(model, torch.zeros(1, *input_size), name=space.model)


def plan_from_study(
    study_name: str, storage_url: str | None, top: int = 3, *, heartbeat: int | None = None
) -> Plan:
    """The top ``top`` front trials of a stored search, with base and control.

    Picked: the front trials that cost no more than the base model (params and MACs), by
    log SynExp, highest first; when none is that cheap, the whole front by log SynExp.
    """
    import optuna

    from widthsearch.space.width_space import WidthSpace

    report = load_front(study_name, storage_url)  # checks the study and says what is wrong
    storage = open_storage(storage_url, heartbeat=heartbeat)
    study = optuna.load_study(study_name=study_name, storage=storage)
    kwargs = dict(study.user_attrs.get("timm_kwargs") or {})
    space = WidthSpace.from_timm(report["model"], input_size=tuple(report["input_size"]), **kwargs)
    points = report["front"]
    if not points:
        raise VerifyError(f"study '{study_name}' has no complete trials; run search first")
    cheap = [t for t in points if t["params"] <= space.params() and t["macs"] <= space.macs()]
    pool = sorted(cheap or points, key=lambda t: -t["log_synexp"])[:top]
    pick = (
        f"the {len(pool)} front trial(s) with the highest log SynExp"
        + (" among those within the base model's params and MACs" if cheap else "")
        + f" (front: {len(points)} of {report['trials']} trials)"
    )
    picked = [
        _candidate(space, f"trial {t['number']}", "candidate", t["widths"], t["number"])
        for t in pool
    ]
    plan = with_controls(space, picked, int(pool[0]["mix"].get("divisor", 8)), pick)
    return replace(plan, study=study, storage_url=storage_url)


def plan_from_width_files(paths: Sequence[str | os.PathLike]) -> Plan:
    """Each width file a candidate (all for one model and input size), with base and control."""
    from widthsearch.models.widthfile import load_width_file

    files = [load_width_file(p) for p in paths]
    first = files[0]
    for p, wf in zip(paths, files, strict=True):
        if (wf.model, wf.input_size) != (first.model, first.input_size):
            raise VerifyError(
                f"{p} is for {wf.model} at {list(wf.input_size)}, {paths[0]} for {first.model} "
                f"at {list(first.input_size)}: verify one model at a time"
            )
    space = first.space()
    picked = [
        _candidate(space, Path(p).stem, "candidate", wf.widths)
        for p, wf in zip(paths, files, strict=True)
    ]
    divisor = int(first.data.get("divisor", 8))
    return with_controls(space, picked, divisor, "the given width files")


# ------------------------------------------------------------------------------- results
def recipe_key(model: str, data_spec: str, input_size: Sequence[int], recipe: Recipe) -> str:
    """Identifies a verification setting: results under one key are comparable."""
    text = json.dumps([model, data_spec, list(input_size), recipe.key()], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


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


def _row_id(row: dict[str, Any]) -> tuple[str, str, int]:
    return str(row["recipe_key"]), str(row["widths_key"]), int(row["seed"])


def _numeric(row: dict[str, Any]) -> dict[str, Any]:
    """A CSV row (all strings) with its numbers typed again."""
    out = dict(row)
    ints = ("seed", "epochs", "steps", "params", "macs", "search_params", "search_macs", "n")
    for k in (*ints, "pruned_at_epoch"):
        if out.get(k) not in (None, ""):
            out[k] = int(out[k])
    floats = ("top1", "loss", "wall_seconds", "images_per_second", "log_synexp")
    floats += ("latency_ms", "latency_spread")
    for k in floats + DIFFS:
        if out.get(k) not in (None, ""):
            out[k] = float(out[k])
    out["trial"] = None if out.get("trial") in (None, "", "None") else int(out["trial"])
    return out


def _study_rows(study: optuna.Study | None) -> list[dict[str, Any]]:
    """Result rows older versions kept in the search study's ``verify`` attribute (imported
    into the verification study, not retrained)."""
    if study is None:
        return []
    stored = study.user_attrs.get("verify") or {}
    return [row for runs in stored.values() for row in runs.get("rows", [])]


def _save_summary(
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
    stored = dict(study.user_attrs.get("verify") or {})
    name = settings["recipe_key"] + ("" if match == "macs" else f"+{match}")
    old = stored.get(name) or {}
    entry = {**settings, "verification_study": verification, "summary": summary}
    if old.get("rows"):
        entry["rows"] = old["rows"]
    stored[name] = entry
    study.set_user_attr("verify", stored)


def stored_verifications(study: optuna.Study) -> list[dict[str, Any]]:
    """Summaries of the verification runs a study holds (finished runs only), oldest first."""
    stored = study.user_attrs.get("verify") or {}
    return [v["summary"] for v in stored.values() if v.get("summary")]


# ---------------------------------------------------------------------------------- run
DIFFS = ("top1_vs_base", "top1_vs_control", "top1_vs_random")


@dataclass
class Summary:
    """Mean and standard deviation over the completed seeds of one candidate (no std for one
    seed); its pruned runs apart."""

    candidate: Candidate
    rows: list[dict[str, Any]]
    """Completed runs."""
    same_as: str | None = None
    """The label of a candidate with the same widths, whose results these are."""
    pruned: list[dict[str, Any]] = field(default_factory=list)
    """Runs a pruner stopped: left out of the mean, the spread and the verdicts."""

    def _stat(self, key: str) -> tuple[float, float | None]:
        values = [float(r[key]) for r in self.rows]
        if not values:
            return math.nan, None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None

    def to_dict(self) -> dict[str, Any]:
        c = self.candidate
        top1, top1_std = self._stat("top1")
        loss, loss_std = self._stat("loss")
        first = self.rows[0] if self.rows else {}
        return {
            "candidate": c.label,
            "kind": c.kind,
            "trial": c.trial,
            "same_as": self.same_as,
            "seeds": [int(r["seed"]) for r in self.rows],
            "n": len(self.rows),
            "top1": top1,
            "top1_std": top1_std,
            "top1_seeds": [float(r["top1"]) for r in self.rows],
            "loss": loss,
            "loss_std": loss_std,
            "epochs": first.get("epochs"),
            "steps": first.get("steps"),
            "images_per_second": self._stat("images_per_second")[0] if self.rows else None,
            "wall_seconds": sum(float(r["wall_seconds"]) for r in self.rows + self.pruned),
            "shared_from": sorted({r["shared_from"] for r in self.rows if r.get("shared_from")}),
            "shared": sum(1 for r in self.rows if r.get("shared_from")),
            "params": (first or (self.pruned or [{}])[0]).get("params"),
            "macs": (first or (self.pruned or [{}])[0]).get("macs"),
            "search_params": c.params,
            "search_macs": c.macs,
            "log_synexp": c.log_synexp,
            "widths": list(c.widths),
            "pruned": [
                {
                    "seed": int(r["seed"]),
                    "epoch": int(r["pruned_at_epoch"]),
                    "top1": float(r["top1"]),
                    "loss": float(r["loss"]),
                }
                for r in self.pruned
            ],
        }


@dataclass
class VerifyReport:
    """Everything ``widthsearch verify`` prints; ``to_dict()`` is its ``--json``."""

    model: str
    study: str | None
    pick: str
    data: str
    data_description: str
    num_classes: int
    input_size: tuple[int, int, int]
    search_input_size: tuple[int, ...]
    recipe: Recipe
    recipe_key: str
    seeds: tuple[int, ...]
    device: str
    summaries: list[Summary]
    trained: int
    skipped: int
    out: str | None
    latency: Posynomial | None = None
    """The study's latency model (ms at the search's input size), where it has one."""
    val_images: int = 0
    """Validation images: one of them is the resolution of top-1 (a floor on the spread)."""
    warnings: list[str] = field(default_factory=list)
    """What the recipe warns about at this data size (:meth:`Recipe.notes`)."""
    pruner: str = "none"
    """The verification study's pruner (:mod:`widthsearch.verify.queue`)."""
    verification_study: str | None = None
    """The Optuna study whose trials are the runs (in the search's storage)."""
    workers: int = 1
    measured_latency: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Per width vector (:attr:`Candidate.key`): median ms and spread of one forward pass of
    the model as trained, all timed in one interleaved run (:func:`measure_trained_latency`)."""
    latency_device: str | None = None
    """What ``measured_latency`` was timed on, in words (None: not measured)."""
    latency_load: float | None = None
    """CPU cores other processes kept busy while ``measured_latency`` was timed on a CPU
    (:func:`widthsearch.hardware.timing.others_busy`; None: not known)."""
    match: str = "macs"
    """What the controls are matched to: the first candidate's ``macs`` or ``params``."""

    def summary(self) -> dict[str, Any]:
        """The results without this session's counts: what the study keeps."""
        info = self.to_dict()
        for k in ("trained", "skipped", "out", "workers"):
            info.pop(k)
        return info

    def to_dict(self) -> dict[str, Any]:
        info = {
            "model": self.model,
            "study": self.study,
            "pick": self.pick,
            "data": self.data,
            "data_description": self.data_description,
            "num_classes": self.num_classes,
            "input_size": list(self.input_size),
            "search_input_size": list(self.search_input_size),
            "recipe": self.recipe.to_dict(),
            "recipe_key": self.recipe_key,
            "seeds": list(self.seeds),
            "device": self.device,
            "trained": self.trained,
            "skipped": self.skipped,
            "out": self.out,
            "val_images": self.val_images,
            "pruner": self.pruner,
            "verification_study": self.verification_study,
            "workers": self.workers,
            "latency_device": self.latency_device,
            "latency_load": self.latency_load,
            "match": self.match,
            "results": [s.to_dict() for s in self.summaries],
        }
        for r in info["results"]:  # predicted at the search's input size, next to img/s
            r["predicted_latency_ms"] = (
                None if self.latency is None else float(self.latency(r["widths"]))
            )
            ms, spread = self.measured_latency.get(widths_key(r["widths"]), (None, None))
            r["latency_ms"], r["latency_spread"] = ms, spread
        add_verdicts(info["results"], 1 / self.val_images if self.val_images else 0.0)
        info["verdicts"] = verdict_lines(info["results"])
        info["notes"] = [*self.warnings, *cost_notes(info), *latency_notes(info)]
        return info


def mean_std(
    mean: float | None, std: float | None, n: int, scale: float = 1.0, digits: int = 1
) -> str:
    """``mean ± std`` over ``n`` seeds; ``mean (n=1)`` for one seed, which has no spread;
    ``-`` when no seed finished."""
    if mean is None or n < 1 or math.isnan(mean):
        return "-"
    if n == 1 or std is None:
        return f"{scale * mean:.{digits}f} (n={n})"
    return f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"


def add_verdicts(results: list[dict[str, Any]], resolution: float = 0.0) -> None:
    """Give each result of :meth:`VerifyReport.to_dict` its paired top-1 verdicts:
    ``vs_base`` (every result but the base), ``vs_control`` (candidates) and ``vs_random``
    (candidates, against the mean of the random-shape controls seed by seed, over the seeds
    every random control finished), each a :class:`widthsearch.verify.verdict.Verdict` as a dict, or
    None where there is nothing to compare (the result is the reference, or has its widths)."""
    from widthsearch.verify.verdict import paired

    def by_seed(r: dict[str, Any]) -> dict[int, float]:
        return dict(zip(r["seeds"], r.get("top1_seeds") or [], strict=False))

    refs = {
        kind: next((r for r in results if r["kind"] == kind), None) for kind in ("base", "control")
    }
    randoms = [by_seed(r) for r in results if r["kind"] == "random"]
    shared = set.intersection(*(set(r) for r in randoms)) if randoms else set()
    random_mean = {s: statistics.fmean(r[s] for r in randoms) for s in sorted(shared)}
    for r in results:
        for kind, key in (("base", "vs_base"), ("control", "vs_control")):
            ref = refs[kind]
            applies = r["kind"] != "base" if kind == "base" else r["kind"] == "candidate"
            if ref is None or ref is r or not applies or r.get("same_as") == ref["candidate"]:
                r[key] = None
                continue
            v = paired(by_seed(r), by_seed(ref), name=ref["candidate"], resolution=resolution)
            r[key] = v.to_dict()
        r["vs_random"] = None
        if randoms and r["kind"] == "candidate":
            name = f"random shapes (mean of {len(randoms)})"
            # the mean of k controls moves in steps of 1/k image
            v = paired(by_seed(r), random_mean, name=name, resolution=resolution / len(randoms))
            r["vs_random"] = v.to_dict()


def _verdict(v: dict[str, Any]):
    from widthsearch.verify.verdict import Verdict

    return Verdict(**{k: v[k] for k in Verdict.__dataclass_fields__})


def verdict_text(v: dict[str, Any] | None, scale: float = 100.0) -> str:
    """A stored verdict as ``+5.6 ± 4.1, better`` (``-`` for none)."""
    return "-" if v is None else _verdict(v).text(scale)


def verdict_lines(results: Sequence[dict[str, Any]]) -> list[str]:
    """One sentence per candidate: its cost next to the base's as trained, then its verdicts
    against the base, the control and the random controls, e.g. ``trial 7 (0.50x MACs, 0.61x
    measured latency) against base: better (+5.6 ± 4.1 points); against uniform 0.9x: ...``."""
    lines = []
    base = next((r for r in results if r["kind"] == "base"), {})
    for r in results:
        if r["kind"] != "candidate":
            continue
        if r.get("same_as"):
            lines.append(f"{r['candidate']}: the same widths as {r['same_as']}")
            continue
        costs = [
            f"{r[k] / base[k]:.2f}x {what}"
            for k, what in (("macs", "MACs"), ("latency_ms", "measured latency"))
            if r.get(k) and base.get(k)
        ]
        name = r["candidate"] + (f" ({', '.join(costs)})" if costs else "")
        pruned = r.get("pruned") or []
        parts = [
            f"against {v['reference']}: {v['label']} ({_verdict(v).interval()} points)"
            for v in (r.get("vs_base"), r.get("vs_control"), r.get("vs_random"))
            if v is not None and (v["seeds"] or not pruned)
        ]
        if pruned:
            stops = ", ".join(pruned_text(p) for p in pruned)
            tail = (
                "; ".join(parts) + f", over its {r['n']} completed seed(s)"
                if parts
                else "no verdict"
            )
            lines.append(f"{name} pruned ({stops}): {tail}")
        elif parts:
            lines.append(f"{name} " + "; ".join(parts))
    return lines


def pruned_text(p: dict[str, Any]) -> str:
    """A pruned run as ``seed 0 at epoch 3, top-1 41.2%``."""
    return f"seed {p['seed']} at epoch {p['epoch']}, top-1 {100 * p['top1']:.1f}%"


def quick_check(recipe: dict[str, Any]) -> str:
    """``at most 20 steps, a fixed subset of 256 training images`` for a recipe (as a dict)
    with ``max_steps`` or ``train_subset``: what makes it a quick check; empty for a full run."""
    parts = []
    if recipe.get("max_steps") is not None:
        parts.append(f"at most {recipe['max_steps']} steps")
    if recipe.get("train_subset") is not None:
        parts.append(f"a fixed subset of {recipe['train_subset']:,} training images")
    return ", ".join(parts)


def cost_notes(info: dict[str, Any]) -> list[str]:
    """Candidates whose MACs ratio to the base, as trained, differs by over 5% from the ratio
    at the search's input size (``info``: what :meth:`VerifyReport.to_dict` returns)."""
    results = info["results"]
    base = next((r for r in results if r["kind"] == "base" and r["macs"]), None)
    if base is None:
        return []
    _, h, w = info["input_size"]
    _, sh, sw = info["search_input_size"]
    notes = []
    for r in results:
        if r["kind"] != "candidate" or not r["macs"]:
            continue
        trained, search = r["macs"] / base["macs"], r["search_macs"] / base["search_macs"]
        if abs(trained / search - 1) > 0.05:
            notes.append(
                f"{r['candidate']} costs {trained:.2f}x the base's MACs as trained ({h}x{w}, "
                f"{info['num_classes']} classes) but {search:.2f}x at the search's {sh}x{sw}: "
                "squeeze-excite convs and the classifier do not shrink with the input. The "
                "uniform control is matched as trained."
            )
    return notes


NOISY_SPREAD = 0.25
"""Latency timings whose interquartile range exceeds this share of their median are noisy
(a busy machine): said so, and timed again by the next ``verify``."""


BUSY_CORES = 0.5
"""CPU latency timings during which other processes kept more than this many cores busy on
average were taken on a busy machine: said so, and timed again by the next ``verify``."""


def _busy(load: float | None) -> bool:
    """Whether timings were taken with more than :data:`BUSY_CORES` of other load."""
    return load is not None and load > BUSY_CORES


def latency_notes(info: dict[str, Any]) -> list[str]:
    """A warning when the measured latencies were noisy or timed on a busy machine
    (``info``: as :func:`cost_notes`)."""
    notes = []
    load = info.get("latency_load")
    if _busy(load):
        notes.append(
            f"latency was timed while other processes kept {load:.1f} CPU core(s) busy: "
            "their ratios may be off even where the timings look steady; the next verify "
            "times them again (run it when the machine is quiet)"
        )
    spreads = [r["latency_spread"] for r in info["results"] if r.get("latency_spread") is not None]
    if spreads and max(spreads) > NOISY_SPREAD:
        notes.append(
            f"latency timings were noisy (interquartile range up to {max(spreads):.0%} of the "
            "median; the machine was busy?): trust their ratios less; the next verify times "
            "them again"
        )
    return notes


def count_trained_model(model, input_size: Sequence[int]) -> tuple[int, int]:
    """(params, MACs) of the model as trained: numel, and FlopCounterMode / 2 for one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


Progress = Callable[[Candidate, int], Any]
"""Called before a candidate/seed trains; returns (on_step, on_epoch, close) hooks or None."""
Log = Callable[[str], None]
"""Takes a one-line message for the user (warnings, the time estimate)."""
ESTIMATE_STEPS = 5
"""Steps of the first run timed (after its first) when the models are not timed up front."""
PROBE_STEPS = 3
"""Steps timed per model (after one untimed) before training, for the estimate."""
PROBE_SHARE = 0.05
"""Models are timed up front only when that costs at most this share of the steps to train."""
LONG_RUN_SECONDS = 60.0
"""A verification estimated to take longer than this says so before the bulk of the work."""


def epoch_lines(say: Log, epochs: int) -> Progress:
    """Progress as one line per finished epoch, where a progress bar cannot draw: a log file,
    or spawned workers sharing one terminal. An epoch of a long run takes minutes, and the line
    that ends the run may be hours away; these say the work is moving and how fast."""

    def hooks(cand: Candidate, seed: int):
        def on_epoch(record: dict[str, float]) -> None:
            say(
                f"{cand.label} seed {seed}: epoch {int(record['epoch'])}/{epochs}, "
                f"val top-1 {100 * record['val_top1']:.1f}%, loss {record['val_loss']:.3f}, "
                f"{record['seconds']:.0f} s"
            )

        return None, on_epoch, None

    return hooks


LATENCY_RUNS = 30
"""Timed forward passes per model for the measured latency ``verify`` reports (0: none)."""


def model_builder(
    space: WidthSpace, widths: Sequence[int], num_classes: int
) -> Callable[[], nn.Module]:
    """What verification builds for ``widths``: the model with ``num_classes`` classes, native
    where timm can build it (:func:`widthsearch.space._portable.build`), before any stem policy."""
    from widthsearch.models.native import build_spec
    from widthsearch.space import _portable

    def build() -> nn.Module:
        return _portable.build(build_spec(space, widths), num_classes=num_classes)

    return build


def measure_trained_latency(
    space: WidthSpace,
    candidates: Sequence[Candidate],
    num_classes: int,
    stem: str,
    input_size: Sequence[int],
    device: Device,
    runs: int = LATENCY_RUNS,
) -> dict[str, tuple[float, float]]:
    """Median ms and spread of one forward pass of each distinct width vector on ``device``
    (:func:`latency_device`), built as trained (``num_classes``, the ``stem`` policy,
    ``input_size``) and timed in one interleaved run.

    Equal MACs are not equal time (a layer's shape decides how well it runs), so ``verify``
    puts this next to MACs for every model it compares.
    """
    import torch

    from widthsearch.hardware.bench import measure_latency
    from widthsearch.train.stem import apply_stem

    distinct = list({c.key: c for c in candidates}.values())
    torch.manual_seed(0)
    models = [
        apply_stem(model_builder(space, c.widths, num_classes)(), stem, input_size)
        for c in distinct
    ]
    measured = measure_latency(models, input_size, device, runs=runs)
    return {c.key: m for c, m in zip(distinct, measured, strict=True)}


def latency_device(device: str) -> Device:
    """Where ``verify`` times its models: batch 1, float32, on the training device's kind
    (``cpu``: one thread, as the CPU latency profiles are made; ``cuda``: the current GPU)."""
    from widthsearch.hardware.timing import current_device

    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return current_device(kind, threads=1 if kind == "cpu" else None, batch_size=1)


def _stored_latency(
    runs: optuna.Study, rows: Sequence[dict[str, Any]], key: str, timed_on: str, wanted: set[str]
) -> tuple[dict[str, tuple[float, float]], float | None] | None:
    """Latencies timed on ``timed_on`` for every width vector in ``wanted``, and the load they
    were timed under, from the verification study ``runs`` or, where it keeps none for that
    device (older versions), from the results CSV's ``rows`` (recipe ``key``): one earlier
    interleaved run, so their ratios hold. None when the source lacks any of them, or they were
    noisy (:data:`NOISY_SPREAD`) or timed on a busy machine (:data:`BUSY_CORES`), and all are
    timed again (a rerun changes nothing; a new model is never set against old timings)."""
    stored = runs.user_attrs.get("latency") or {}
    if stored.get("device") == timed_on:
        found = {k: (float(ms), float(spread)) for k, (ms, spread) in stored["ms"].items()}
        load = stored.get("others_busy")
        if _busy(load):
            return None
    else:
        found = {
            str(r["widths_key"]): (float(r["latency_ms"]), float(r.get("latency_spread") or 0))
            for r in rows
            if r.get("recipe_key") == key
            and r.get("latency_ms") not in (None, "")
            and r.get("latency_device") == timed_on
        }
        load = None
    if wanted <= set(found) and all(found[k][1] <= NOISY_SPREAD for k in wanted):
        return found, load
    return None


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def makespan(seconds: Sequence[float], workers: int) -> float:
    """Wall time of runs taking ``seconds``, claimed in this order by ``workers`` workers that
    each take the next run as soon as they are free (how a verification's queue empties).

    Not the total over the workers: the slow candidates queue last, and the last of them can
    leave one worker training alone (mobilenetv2_100 on 2 workers: 1.9 h, against 1.7 h for
    the total shared out evenly)."""
    free = [0.0] * max(1, workers)
    for s in seconds:
        i = free.index(min(free))
        free[i] += s
    return max(free)


class _Estimate:
    """Says how long the runs to do will take, when that is over ``threshold`` seconds.

    Widths of one model train at very different speeds (on a CPU, a half-params candidate
    with twice the base's MACs ran 2.5x faster than the base), so each distinct model is
    timed for a few steps before training (:func:`widthsearch.train.step_seconds`) when that
    costs little next to the runs (``PROBE_SHARE``); the estimate is then the sum over runs of
    steps x that model's step time. Otherwise (short runs) the first steps of the first run
    are timed and taken for every run, and the message says the others were not timed. Both
    add evaluation: a forward pass over the validation images per epoch, a third of a
    training step's time per image. A shared machine's load changes: a rough figure.
    """

    def __init__(
        self,
        runs: Sequence[tuple[Candidate, int]],
        steps: int,
        evaluations: int,
        batch_size: int,
        device: torch.device,
        log: Log,
        threshold: float,
        workers: int = 1,
    ) -> None:
        self.runs, self.steps, self.evaluations = list(runs), steps, evaluations
        self.workers = workers
        self.batch_size, self.device, self.log, self.threshold = batch_size, device, log, threshold
        self.done = not runs
        self.index, self.start = 0, None
        self.seconds: float | None = None

    def should_probe(self) -> bool:
        models = len({c.key for c, _ in self.runs})
        return (PROBE_STEPS + 1) * models <= PROBE_SHARE * self.steps * len(self.runs)

    def _run_seconds(self, per_step: float) -> float:
        return per_step * (self.steps + self.evaluations / self.batch_size / 3)

    def probed(self, per_step: dict[str, float]) -> None:
        """Estimate from each model's step time (by widths key), before any training."""
        self.done = True
        self.seconds = makespan(
            [self._run_seconds(per_step[c.key]) for c, _ in self.runs], self.workers
        )
        named = {c.key: c.label for c, _ in self.runs}
        times = ", ".join(f"{named[k]} {t:.2f}" for k, t in per_step.items())
        self._say(f"s per step, timed over {PROBE_STEPS} steps of each: {times}")

    def begin(self, index: int) -> None:
        self.index, self.start = index, None

    def wrap(self, on_step):
        def hook(epoch: int, step: int, steps: int, loss: float) -> None:
            if on_step is not None:
                on_step(epoch, step, steps, loss)
            if not self.done:
                self._tick(epoch * steps + step)

        return hook

    def _now(self) -> float:
        import time

        if self.device.type == "cuda":
            import torch

            torch.cuda.synchronize(self.device)
        return time.perf_counter()

    def _tick(self, i: int) -> None:
        """In-run timing: the first run with enough steps left stands for all of them."""
        if self.start is None:
            self.start = (i, self._now())
            return
        i0, t0 = self.start
        if i - i0 < ESTIMATE_STEPS:
            return
        self.done = True
        per_step = (self._now() - t0) / (i - i0)
        later = len(self.runs) - self.index - 1
        this_run = self._run_seconds(per_step) - per_step * (i + 1)
        self.seconds = this_run + later * self._run_seconds(per_step)
        cand, seed = self.runs[self.index]
        self._say(
            f"{per_step:.2f} s per step, timed over {i - i0} steps of {cand.label} seed {seed}; "
            "the other widths were not timed and may train at other speeds"
        )

    def _say(self, how: str) -> None:
        if self.seconds is not None and self.seconds > self.threshold:
            self.log(
                f"estimate: about {_duration(self.seconds)} more for {len(self.runs)} run(s) of "
                f"{self.steps} steps on {self.device}"
                + (f", shared by {self.workers} workers" if self.workers > 1 else "")
                + f" ({how})"
            )


@dataclass(frozen=True)
class Job:
    """What a worker needs to train any run of one verification (picklable: spawned workers
    get it, open the storage and load the data themselves)."""

    space: WidthSpace
    data_spec: str
    num_classes: int
    input_size: tuple[int, int, int]
    recipe: Recipe
    key: str
    settings: dict[str, Any]
    study_name: str
    storage_url: str | None
    checkpoints: str
    compile: bool = False
    heartbeat: int | None = None

    def checkpoint(self, cand: Candidate, seed: int) -> Path:
        return Path(self.checkpoints) / f"{self.key}-{cand.key}-s{seed}.pt"

    def build(self, cand: Candidate):
        """A builder of ``cand``'s model, as every run and the time estimate train it."""
        return model_builder(self.space, cand.widths, self.num_classes)


class _Objective:
    """Train the run a claimed trial names; report top-1 per epoch; let the pruner stop a
    candidate (never the base or a control) before its last epoch."""

    def __init__(
        self,
        job: Job,
        data: Dataset,
        device: torch.device,
        *,
        say: Log | None = None,
        progress: Progress | None = None,
        estimate: _Estimate | None = None,
        order: Sequence[str] = (),
    ) -> None:
        self.job, self.data, self.device = job, data, device
        self.say, self.progress, self.estimate = say, progress, estimate
        self.order = {rid: i for i, rid in enumerate(order)}
        self.counts: dict[str, tuple[int, int]] = {}
        self.trained = 0

    def _duplicate_of(self, trial: optuna.Trial, rid: str) -> int | None:
        from optuna.trial import TrialState

        storage = trial.study._storage
        for t in storage.get_all_trials(trial.study._study_id, deepcopy=False):
            if t.number == trial.number or t.user_attrs.get("run") != rid:
                continue
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED):
                return t.number
            if t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < trial.number:
                return t.number
        return None

    def _completed_other_seed(self, trial: optuna.Trial, key: str, seed: int) -> bool:
        from optuna.trial import TrialState

        storage = trial.study._storage
        return any(
            t.user_attrs.get("widths_key") == key and t.user_attrs.get("seed") != seed
            for t in storage.get_all_trials(
                trial.study._study_id, deepcopy=False, states=(TrialState.COMPLETE,)
            )
        )

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from widthsearch.train.stem import apply_stem
        from widthsearch.verify.queue import Skip, candidate_of, worker_id

        attrs = trial.user_attrs
        rid = attrs.get("run")
        if rid is None:  # ask() made a fresh trial: the queue emptied after the last look
            trial.set_user_attr("skipped", "not a run: the queue was empty")
            trial.study.stop()
            raise Skip
        dup = self._duplicate_of(trial, rid)
        if dup is not None:
            trial.set_user_attr("skipped", f"duplicate of trial {dup}")
            raise Skip
        trial.set_user_attr("worker", worker_id())
        cand, seed = candidate_of(attrs), int(attrs["seed"])
        protected = bool(attrs.get("protected")) or cand.kind != "candidate"
        if not protected and self._completed_other_seed(trial, attrs["widths_key"], seed):
            protected = True  # it survived the halving once: its seeds finish, for a verdict
        trial.suggest_int("seed", seed, seed)
        job, recipe, size = self.job, self.job.recipe, self.job.input_size
        build = job.build(cand)
        if cand.key not in self.counts:
            self.counts[cand.key] = count_trained_model(
                apply_stem(build(), recipe.stem, size), size
            )
        counted = self.counts[cand.key]
        spe = recipe.steps_per_epoch(len(self.data.train))
        last = recipe.epochs_run(spe)
        ckpt = job.checkpoint(cand, seed)
        reported = set(trial.study._storage.get_trial(trial._trial_id).intermediate_values)
        history: list[dict[str, float]] = []

        def prune(record: dict[str, float]) -> None:
            """Report the epoch; stop a candidate the pruner rejects before its last epoch."""
            epoch = int(record["epoch"])
            history.append(record)
            if epoch not in reported:
                trial.report(float(record["val_top1"]), epoch)
                reported.add(epoch)
            if epoch >= last:
                return
            stop = trial.should_prune()  # asked for every run: references set the rungs too
            if stop and not protected:
                row = _pruned_row(cand, seed, record, history, spe, counted, job, self.device)
                trial.set_user_attr("result", _jsonable(row))
                ckpt.unlink(missing_ok=True)
                self.trained += 1
                if self.say:
                    self.say(f"{cand.label} seed {seed}: {pruned_text(_pruned_info(row))}; pruned")
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        if ckpt.is_file():  # resumed: what the checkpoint holds is reported (and judged) first
            import torch

            for record in torch.load(ckpt, map_location="cpu", weights_only=False)["history"]:
                prune(record)
        hooks = self.progress(cand, seed) if self.progress else None
        on_step, on_epoch, close = hooks if hooks else (None, None, None)
        if self.estimate is not None:
            self.estimate.begin(self.order.get(rid, 0))
            on_step = self.estimate.wrap(on_step)

        def epoch_done(record: dict[str, float]) -> None:
            if on_epoch is not None:
                on_epoch(record)
            prune(record)

        try:
            result = train(
                build,
                self.data,
                size,
                recipe,
                seed,
                self.device,
                checkpoint=ckpt,
                on_step=on_step,
                on_epoch=epoch_done,
                compile=job.compile,
            )
        finally:
            if close:
                close()
        row = _result_row(cand, seed, result, counted, job.settings, self.device)
        trial.set_user_attr("result", _jsonable(row))
        ckpt.unlink(missing_ok=True)
        self.trained += 1
        if self.say:
            self.say(
                f"{cand.label} seed {seed}: top-1 {100 * result.top1:.1f}% after "
                f"{result.epochs} epoch(s), {result.wall_seconds:.0f} s"
                + (f" (resumed at epoch {result.resumed_from})" if result.resumed_from else "")
            )
        return result.top1


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    from widthsearch.verify.queue import _plain

    return _plain(row)


def _pruned_info(row: dict[str, Any]) -> dict[str, Any]:
    return {"seed": row["seed"], "epoch": row["pruned_at_epoch"], "top1": row["top1"]}


def _pruned_row(cand, seed, record, history, spe, counted, job, device) -> dict[str, Any]:
    """The result row of a run stopped after ``record``'s epoch."""
    epoch, recipe = int(record["epoch"]), job.recipe
    partial = TrainResult(
        top1=float(record["val_top1"]),
        loss=float(record["val_loss"]),
        epochs=epoch,
        wall_seconds=sum(float(h["seconds"]) for h in history),
        images_per_second=math.nan,
        steps=min(epoch * spe, recipe.total_steps(spe)),
    )
    row = _result_row(cand, seed, partial, counted, job.settings, device)
    row["images_per_second"] = None
    row["pruned_at_epoch"] = epoch
    return row


def _worker_main(job: Job, index: int, device: str, threads: int | None, poll: float) -> None:
    """A spawned worker: open the storage, load the data, claim runs until none is left."""
    try:
        import torch

        from widthsearch.train.data import load_dataset
        from widthsearch.verify.queue import open_verification, quiet_optuna, work

        if threads:
            torch.set_num_threads(threads)
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is not None:
            torch.cuda.set_device(dev)
        prefix = f"[worker {index + 1}] "

        def say(message: str) -> None:
            print(prefix + message, file=sys.stderr, flush=True)

        storage = open_storage(job.storage_url, heartbeat=job.heartbeat)
        data = load_dataset(job.data_spec, job.input_size)
        spe = job.recipe.steps_per_epoch(len(data.train))
        with quiet_optuna():
            study = open_verification(
                storage,
                job.study_name,
                settings=job.settings,
                pruner="auto",
                candidates=0,
                epochs=job.recipe.epochs_run(spe),
                create=False,
            )
            progress = epoch_lines(say, job.recipe.epochs_run(spe))
            work(study, _Objective(job, data, dev, say=say, progress=progress), poll=poll)
    except WidthSearchError as exc:
        print(f"widthsearch: error: worker {index + 1}: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _devices(device: torch.device, workers: int, devices: Sequence[str] | None) -> list[str]:
    """One device per worker: ``devices`` as given, else ``device`` for every worker."""
    import torch

    if not devices:
        return [str(device)] * workers
    out = []
    for name in devices:
        try:
            dev = torch.device(name)
        except RuntimeError:
            raise VerifyError(
                f"unknown device '{name}' in --devices; use cpu, cuda:0, ..."
            ) from None
        if dev.type == "cuda":
            count = torch.cuda.device_count() if torch.cuda.is_available() else 0
            if (dev.index or 0) >= count:
                raise VerifyError(f"--devices names {name}, but torch sees {count} CUDA device(s)")
        elif dev.type != "cpu":
            raise VerifyError(f"unknown device '{name}' in --devices; use cpu, cuda:0, ...")
        out.append(str(dev))
    return out


def _resolve_head(
    recipe: Recipe, plan: Plan, num_classes: int, size: Sequence[int]
) -> tuple[Recipe, str | None]:
    """``recipe`` with its head policy decided (``auto``: from the base model as trained, built
    with seed 0, the global RNG left as it was), and the note that says so when ``auto``
    zeroes the head."""
    from widthsearch.train.head import resolve_policy
    from widthsearch.train.stem import apply_stem

    if recipe.head != "auto":
        return recipe, None
    import torch

    base = next(c for c in plan.candidates if c.kind == "base")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        built = model_builder(plan.space, base.widths, num_classes)()
        head, note = resolve_policy("auto", apply_stem(built, recipe.stem, size), size)
    return replace(recipe, head=head), note


def run_verify(
    plan: Plan,
    data: Dataset,
    recipe: Recipe,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    device: torch.device | str = "auto",
    input_size: Sequence[int] | None = None,
    out: str | os.PathLike | None = None,
    checkpoints: str | os.PathLike | None = None,
    progress: Progress | None = None,
    log: Log | None = None,
    estimate_over: float | None = None,
    compile: bool = False,
    random: int = 0,
    workers: int = 1,
    devices: Sequence[str] | None = None,
    pruner: str = "auto",
    storage_url: str | None = None,
    heartbeat: int | None = None,
    latency_runs: int = LATENCY_RUNS,
    retime: bool = False,
    match: str = "macs",
) -> VerifyReport:
    """Train every distinct width vector of ``plan`` for every seed not already finished,
    next to the base, the uniform control and ``random`` random-shape controls.

    The runs are trials of the verification study of this setting (:mod:`widthsearch.verify.queue`)
    in the plan's storage (width files: ``storage_url``, else in memory): enqueued once,
    trained here by ``workers`` spawned processes (one per entry of ``devices`` when given;
    one worker trains in this process), or by ``verify`` on other machines sharing the
    storage. ``pruner`` (``auto``, ``sha``, ``hyperband``, ``median``, ``none``) stops weak
    candidates early; the base and the control always train to the end. Results go to ``out``
    (CSV) and the summary to the plan's study; epoch checkpoints go to ``checkpoints``
    (default: next to ``out``) and are removed once their result is stored. ``log`` gets the
    recipe's warnings before training, one line per finished run and, once a few steps are
    timed, the estimated total time when it is over ``estimate_over`` seconds (default
    ``LONG_RUN_SECONDS``; with workers, each model is timed up front at a worker's threads and
    the runs dealt out in queue order, :func:`makespan`).
    ``heartbeat``: seconds between heartbeats of a running trial (RDB storages).
    ``match``: the controls' cost, the first candidate's ``macs`` or ``params``
    (:func:`with_controls`); each has its own summary in the study.
    ``latency_runs``: timed forward passes per model for the measured latency of every model
    with a result (:func:`measure_trained_latency`; 0: not measured), taken after training in
    one interleaved run (kept in the verification study), and again unless that study or the
    CSV holds them for every such model from the same device (``retime``: timed again anyway,
    e.g. on a machine that is quiet now).

    Raises:
        VerifyError: bad input (before anything is written), e.g. several workers without a
            storage to share the runs through.
    """
    import optuna
    import torch

    from widthsearch.hardware.timing import others_busy, pinned_threads
    from widthsearch.train.loop import resolve_device
    from widthsearch.verify.queue import (
        enqueue,
        finished,
        import_shared,
        open_verification,
        quiet_optuna,
        recover,
        result_row,
        run_order,
        verification_name,
        work,
    )

    space = plan.space
    device = resolve_device(device) if isinstance(device, str) else device
    size = tuple(input_size or space.input_size)
    if len(size) != 3 or size[0] != space.input_size[0]:
        raise VerifyError(
            f"input size {list(size)} must keep the model's {space.input_size[0]} input channels"
        )
    seeds = tuple(dict.fromkeys(int(s) for s in seeds))
    if not seeds:
        raise VerifyError("give at least one seed")
    if latency_runs and latency_runs < LATENCY_MIN_RUNS:
        raise VerifyError(
            f"latency runs must be 0 (no latency) or at least {LATENCY_MIN_RUNS}, "
            f"got {latency_runs}"
        )
    url = plan.storage_url if plan.study is not None else storage_url
    worker_devices = _devices(device, len(devices) if devices else workers, devices)
    workers = len(worker_devices)
    if workers < 1:
        raise VerifyError(f"workers must be at least 1, got {workers}")
    if workers > 1 and plan.study is None and storage_url is None:
        raise VerifyError(
            "several workers share a verification through a storage: give --storage "
            "FILE.db or journal:FILE.log (one machine) or a PostgreSQL URL (many machines)"
        )
    picked = [c for c in plan.candidates if c.kind == "candidate"]
    setting = training_setting(space, size, data.num_classes, recipe.stem)
    matched = with_controls(
        space, picked, plan.divisor, plan.pick, setting=setting, random=random, match=match
    )
    plan = replace(plan, candidates=matched.candidates)
    recipe, head_note = _resolve_head(recipe, plan, data.num_classes, size)
    key = recipe_key(space.model, data.spec, size, recipe)
    out_path = Path(out) if out is not None else None
    ckpt_dir = (
        Path(checkpoints)
        if checkpoints
        else (
            out_path.with_name(out_path.stem + ".ckpt") if out_path else Path(".widthsearch-verify")
        )
    )
    csv_rows = read_results_csv(out_path) if out_path else []
    settings = {
        "recipe_key": key,
        "model": space.model,
        "data": data.spec,
        "input_size": list(size),
        "recipe": recipe.to_dict(),
    }
    imported = [
        r
        for r in _study_rows(plan.study) + [_numeric(r) for r in csv_rows]
        if r.get("recipe_key") == key and r.get("state") in (None, "", "complete")
    ]
    if plan.study is not None:
        storage = plan.study._storage
    elif storage_url is not None:
        storage = open_storage(storage_url, heartbeat=heartbeat)
    else:
        storage = optuna.storages.InMemoryStorage()
    owner = plan.study.study_name if plan.study is not None else space.model
    name = verification_name(owner, key)
    spe = recipe.steps_per_epoch(len(data.train))
    warnings = recipe.notes(len(data.train)) + ([head_note] if head_note else [])
    first_label: dict[str, str] = {}
    distinct = []
    for cand in plan.candidates:
        if cand.key not in first_label:
            first_label[cand.key] = cand.label
            distinct.append(cand)
    held = {c.key for c in plan.candidates if c.kind != "candidate"}
    runs = run_order(distinct, seeds, held)
    ids = {r.id for r in runs}
    with quiet_optuna():
        study = open_verification(
            storage,
            name,
            settings=settings,
            pruner=pruner,
            candidates=len({c.key for c in picked}),
            epochs=recipe.epochs_run(spe),
        )
        shared = import_shared(study, runs, key)
        enqueue(study, runs, key, imported)
    if shared and log is not None:
        log(
            f"note: {sum(shared.values())} run(s) taken over, not trained again: finished "
            "with the same recipe, widths and seed by "
            + ", ".join(f"'{n}' ({k})" for n, k in shared.items())
        )
    done_before = set(finished(study)) & ids
    queued = {
        t.user_attrs.get("run")
        for t in study._storage.get_all_trials(
            study._study_id, deepcopy=False, states=(optuna.trial.TrialState.WAITING,)
        )
    }
    todo = [(r.candidate, r.seed) for r in runs if r.id in queued]
    job = Job(
        space=space,
        data_spec=data.spec,
        num_classes=data.num_classes,
        input_size=size,  # type: ignore[arg-type]
        recipe=recipe,
        key=key,
        settings=settings,
        study_name=name,
        storage_url=url,
        checkpoints=str(ckpt_dir),
        compile=compile,
        heartbeat=heartbeat,
    )
    if todo and log is not None:
        for w in warnings:
            log(f"warning: {w}")
    poll = 1.0 if heartbeat is None else min(1.0, heartbeat / 2)
    probe_on = device if workers == 1 else torch.device(worker_devices[0])
    estimate = _Estimate(
        todo,
        recipe.total_steps(spe),
        recipe.epochs_run(spe) * len(data.val),
        recipe.batch_size,
        probe_on,
        log or (lambda _: None),
        LONG_RUN_SECONDS if estimate_over is None else estimate_over,
        workers=workers,
    )
    probe = log is not None and estimate.should_probe()
    if workers == 1:
        objective = _Objective(
            job,
            data,
            device,
            say=log,
            progress=progress,
            estimate=estimate,
            order=[f"{c.key}-s{s}" for c, s in todo],
        )
        if probe:
            estimate.probed(_step_times(job, todo, data, device))
        with quiet_optuna():
            work(study, objective, poll=poll)
    else:
        if probe:  # each model timed here, at a worker's share of the threads
            threads = _worker_threads(worker_devices) if probe_on.type == "cpu" else None
            with pinned_threads(threads) if threads else contextlib.nullcontext():
                estimate.probed(_step_times(job, todo, data, probe_on))
        _run_workers(job, study, worker_devices, poll, log)
    if ckpt_dir.is_dir() and not any(ckpt_dir.iterdir()):
        ckpt_dir.rmdir()
    with quiet_optuna():
        recover(study)
    trials = finished(study)
    rows: dict[tuple[str, str, int], dict[str, Any]] = {}
    for rid, t in trials.items():
        if rid in ids:
            row = _numeric(result_row(t))
            rows[_row_id(row)] = row
    trained = len((set(trials) & ids) - done_before)
    have = {k[1] for k in rows}
    with_result = [c for c in distinct if c.key in have]
    measured: dict[str, tuple[float, float]] = {}
    timed_on = None
    load: float | None = None
    if latency_runs and with_result:
        timer = latency_device(worker_devices[0])
        timed_on = f"{timer.describe()}, median of {latency_runs} interleaved runs"
        wanted = {c.key for c in with_result}
        kept = None if retime else _stored_latency(study, csv_rows, key, timed_on, wanted)
        if kept is not None:
            measured, load = kept
        else:
            if log is not None:
                log(f"timing {len(with_result)} model(s) as trained, for their latency ...")
            with others_busy() as busy:
                measured = measure_trained_latency(
                    space, with_result, data.num_classes, recipe.stem, size, timer, latency_runs
                )
            load = busy.cores if timer.type == "cpu" else None
            timings = {
                "device": timed_on,
                "ms": {k: list(v) for k, v in measured.items()},
                "others_busy": load,
            }
            study.set_user_attr("latency", timings)

    def summary_of(c: Candidate) -> Summary:
        mine = [rows[(key, c.key, s)] for s in seeds if (key, c.key, s) in rows]
        return Summary(
            c,
            [r for r in mine if r.get("state") != "pruned"],
            None if first_label[c.key] == c.label else first_label[c.key],
            [r for r in mine if r.get("state") == "pruned"],
        )

    report = VerifyReport(
        model=space.model,
        study=plan.study.study_name if plan.study is not None else None,
        pick=plan.pick,
        data=data.spec,
        data_description=data.describe(),
        num_classes=data.num_classes,
        input_size=size,  # type: ignore[arg-type]
        search_input_size=space.input_size,
        recipe=recipe,
        recipe_key=key,
        seeds=seeds,
        device=", ".join(dict.fromkeys(worker_devices)),
        summaries=[summary_of(c) for c in plan.candidates],
        trained=trained,
        skipped=len(done_before),
        out=None if out_path is None else str(out_path),
        latency=None if plan.study is None else stored_latency(plan.study.user_attrs),
        val_images=len(data.val),
        warnings=warnings,
        pruner=study.user_attrs.get("pruner", "none"),
        verification_study=name,
        workers=workers,
        measured_latency=measured,
        latency_device=timed_on,
        latency_load=load,
        match=match,
    )
    summary = report.summary()
    _annotate(rows, key, summary["results"], timed_on)
    # the file's rows keep their places (ours updated in place; another study's, another
    # recipe's or a seed not asked for this time kept as they are: one file can collect
    # several verifications, and a rerun rewrites it unchanged); new rows follow, sorted
    ordered = [rows.get(_row_id(r), r) for r in csv_rows]
    placed = {_row_id(r) for r in csv_rows}
    ordered += sorted(
        (r for rid, r in rows.items() if rid not in placed),
        key=lambda r: (r["widths_key"], int(r["seed"])),
    )
    if out_path is not None:
        write_results_csv(out_path, ordered)
    if plan.study is not None:
        _save_summary(plan.study, settings, name, summary, match)
    return report


def _step_times(
    job: Job, runs: Sequence[tuple[Candidate, int]], data: Dataset, device: torch.device
) -> dict[str, float]:
    """Seconds per training step of each distinct model of ``runs`` (by widths key), timed
    over ``PROBE_STEPS`` steps on ``device``: what the time estimate sums."""
    per_step: dict[str, float] = {}
    for cand, _ in runs:
        if cand.key not in per_step:
            per_step[cand.key] = step_seconds(
                job.build(cand),
                data,
                job.input_size,
                job.recipe,
                device,
                PROBE_STEPS,
            )
    return per_step


def _worker_threads(devices: Sequence[str]) -> int | None:
    """Torch threads of each CPU worker: the cores shared out among them (None: no CPU
    worker)."""
    cpu = sum(1 for d in devices if d.startswith("cpu"))
    return max(1, (os.cpu_count() or 1) // cpu) if cpu else None


def _run_workers(
    job: Job, study: optuna.Study, devices: Sequence[str], poll: float, log: Log | None
) -> None:
    """Spawn one worker per device (spawn, not fork: a forked child deadlocks in OpenMP once
    the parent has run torch) and wait for them. A worker that dies loses its run to the
    others (:func:`widthsearch.verify.queue.reap`); one that fails with an error stops the command
    once the others have ended."""
    import multiprocessing
    from multiprocessing.connection import wait

    from widthsearch.verify.queue import quiet_optuna, recover, running, waiting

    ctx = multiprocessing.get_context("spawn")
    threads = _worker_threads(devices)
    procs = []
    for i, dev in enumerate(devices):
        args = (job, i, dev, threads if dev.startswith("cpu") else None, poll)
        p = ctx.Process(target=_worker_main, args=args)
        p.start()
        procs.append(p)
    failed: list[tuple[int, int]] = []
    alive = list(enumerate(procs))
    while alive:
        wait([p.sentinel for _, p in alive])
        for i, p in list(alive):
            if p.exitcode is None:
                continue
            p.join()
            alive.remove((i, p))
            if p.exitcode != 0:
                failed.append((i, p.exitcode))
                if log is not None:
                    how = f"signal {-p.exitcode}" if p.exitcode < 0 else f"exit {p.exitcode}"
                    log(f"[worker {i + 1}] ended ({how}); its running run goes back to the queue")
                with quiet_optuna():
                    recover(study)
    with quiet_optuna():
        left = waiting(study) + len(running(study))
    if failed and left:
        i, code = failed[0]
        raise VerifyError(
            f"{len(failed)} worker(s) failed (worker {i + 1}: exit {code}) and {left} run(s) are "
            "not finished; run the same command again to continue"
        )


def _annotate(
    rows: dict[tuple[str, str, int], dict[str, Any]],
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


def _result_row(
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


__all__ = [
    "CSV_FIELDS",
    "MATCHES",
    "Candidate",
    "Plan",
    "Summary",
    "VerifyError",
    "VerifyReport",
    "Job",
    "add_verdicts",
    "cost_notes",
    "mean_std",
    "verdict_lines",
    "verdict_text",
    "count_trained_model",
    "latency_device",
    "latency_notes",
    "makespan",
    "measure_trained_latency",
    "model_builder",
    "plan_from_study",
    "plan_from_width_files",
    "pruned_text",
    "quick_check",
    "read_results_csv",
    "recipe_key",
    "run_verify",
    "stored_verifications",
    "training_setting",
    "with_controls",
]
