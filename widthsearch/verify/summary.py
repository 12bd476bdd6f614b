"""What a verification found, in words: the summary per candidate, its verdicts and notes.

:class:`VerifyReport` is everything ``widthsearch verify`` prints (:meth:`VerifyReport.to_dict`
is its ``--json``, :meth:`VerifyReport.summary` what the search study keeps); the verdicts are
paired by seed (:mod:`widthsearch.verify.verdict`); the text helpers here are shared with the
report page.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from widthsearch.search import widths_key
from widthsearch.verify.latency import latency_notes
from widthsearch.verify.plan import Candidate
from widthsearch.verify.verdict import Verdict, paired

if TYPE_CHECKING:
    from widthsearch.space.cost import Posynomial
    from widthsearch.train.loop import Recipe


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
        info: dict[str, Any] = {
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


def _verdict(v: dict[str, Any]) -> Verdict:
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
            f"against {v['reference']}: {_verdict(v).sentence()}"
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


__all__ = [
    "Summary",
    "VerifyReport",
    "add_verdicts",
    "cost_notes",
    "mean_std",
    "pruned_text",
    "quick_check",
    "verdict_lines",
    "verdict_text",
]
