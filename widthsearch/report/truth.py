"""Ground-truth tables: trained accuracy by width code, to read a front against (``--truth``).

A table is a JSON object whose keys are codes of equal length, one digit per free channel group
(in group order), digit ``k`` in ``1..L`` meaning the width ``round(k * base / L)`` of that
group's base width, and whose values are an accuracy (a number, or an object with ``"mean"``).
Channel-Bench-Macro's ``Results_ResNet.json`` and ``Results_MobileNet.json`` are such tables
(``L = 4``, 7 groups) for the networks of ``benchmarks/channel_bench_macro.py``.

A trial whose widths lie on the table's grid gets the table's accuracy; one off the grid (or with
another number of free groups) gets none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from widthsearch.errors import TruthTableError

COSTS = ("params", "flops")
"""Keys of a table entry's params and MACs (Channel-Bench-Macro's ``flops`` counts MACs)."""
_WHAT = 'a JSON object of width codes such as "4432214" -> accuracy (or {"mean": accuracy})'


@dataclass(frozen=True)
class TruthTable:
    """Accuracy by code, read from ``path``."""

    path: str
    accuracy: Mapping[str, float]
    length: int
    """Digits per code: the number of free groups."""
    levels: int
    """Largest digit ``L``: digit ``k`` is the width ``round(k * base / L)``."""
    costs: Mapping[str, tuple[int, int]] | None = None
    """``(params, MACs)`` by code where the table has them (``"params"``, ``"flops"``)."""

    def code(
        self, widths: Sequence[int], base: Sequence[int], fixed: Sequence[int] = ()
    ) -> str | None:
        """The code of ``widths`` (full vector; ``fixed`` group ids left out), or None when
        they are off the table's grid."""
        free = [(w, b) for i, (w, b) in enumerate(zip(widths, base, strict=True)) if i not in fixed]
        if len(free) != self.length:
            return None
        digits = []
        for w, b in free:
            k = next((k for k in range(1, self.levels + 1) if round(k * b / self.levels) == w), 0)
            if not k:
                return None
            digits.append(str(k))
        return "".join(digits)

    def lookup(
        self, widths: Sequence[int], base: Sequence[int], fixed: Sequence[int] = ()
    ) -> float | None:
        """The table's accuracy at ``widths``, or None off the grid or not in the table."""
        code = self.code(widths, base, fixed)
        return None if code is None else self.accuracy.get(code)


def load_truth(path: str | os.PathLike[str]) -> TruthTable:
    """Read a ground-truth table.

    Raises:
        TruthTableError: the file is missing, not JSON, or not such a table; the message says
            what a table is.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise TruthTableError(f"--truth {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TruthTableError(f"--truth {path} is not JSON ({exc}); expected {_WHAT}") from None
    if not isinstance(data, dict) or not data:
        raise TruthTableError(f"--truth {path} is not a ground-truth table: expected {_WHAT}")
    accuracy: dict[str, float] = {}
    costs: dict[str, tuple[int, int]] = {}
    length = len(next(iter(data)))
    for key, value in data.items():
        acc = value.get("mean") if isinstance(value, dict) else value
        if not (key.isdigit() and "0" not in key):
            raise TruthTableError(
                f"--truth {path}: key {key!r} is not a width code (digits 1-9); expected {_WHAT}"
            )
        if len(key) != length:
            raise TruthTableError(
                f"--truth {path}: key {key!r} has {len(key)} digits, the first key {length}; "
                "a table has one digit per free channel group"
            )
        if isinstance(acc, bool) or not isinstance(acc, int | float):
            raise TruthTableError(
                f"--truth {path}: the entry of {key!r} has no accuracy; expected {_WHAT}"
            )
        accuracy[key] = float(acc)
        if isinstance(value, dict) and all(isinstance(value.get(c), int) for c in COSTS):
            costs[key] = (value["params"], value["flops"])
    levels = max(int(c) for k in accuracy for c in k)
    full = costs if len(costs) == len(accuracy) else None
    return TruthTable(str(p), accuracy, length, levels, full)


def annotate_front(report: dict[str, Any], truth: TruthTable) -> dict[str, Any]:
    """``report`` (:func:`widthsearch.search.load_front`) with each front trial's table accuracy
    (``truth_acc``, None off the grid) and, where the table has each code's params and MACs
    (``"params"``, ``"flops"`` as MACs, as Channel-Bench-Macro's do), the best entry and the
    best uniform code within the trial's params and MACs (``truth_oracle``, ``truth_uniform``:
    the trial's regret and the headroom any shape has over the uniform multiplier there); and
    a ``truth`` summary."""
    base = report.get("base_widths") or []
    fixed = list(report.get("fixed_groups") or [])
    uniform = {str(k) * truth.length for k in range(1, truth.levels + 1)}
    front = []
    for t in report["front"]:
        acc = truth.lookup(t["widths"], base, fixed) if base else None
        row = {**t, "truth_acc": acc, "truth_oracle": None, "truth_uniform": None}
        if truth.costs:
            within = [c for c, (p, m) in truth.costs.items() if p <= t["params"] and m <= t["macs"]]
            if within:
                row["truth_oracle"] = max(truth.accuracy[c] for c in within)
            unis = [truth.accuracy[c] for c in within if c in uniform]
            row["truth_uniform"] = max(unis) if unis else None
        front.append(row)
    on = [t for t in front if t["truth_acc"] is not None]
    best = max(on, key=lambda t: t["truth_acc"], default=None)
    regrets = [t["truth_oracle"] - t["truth_acc"] for t in on if t["truth_oracle"] is not None]
    summary = {
        "file": truth.path,
        "on_table": len(on),
        "front": len(front),
        "best_trial": None if best is None else best["number"],
        "best_acc": None if best is None else best["truth_acc"],
        "table_best": max(truth.accuracy.values()),
        "mean_regret": sum(regrets) / len(regrets) if regrets else None,
    }
    return {**report, "front": front, "truth": summary}


def truth_line(summary: Mapping[str, Any]) -> str:
    """One line on what the table says of a front."""
    head = (
        f"table {summary['file']}: {summary['on_table']} of {summary['front']} front trials lie "
        "on its grid"
    )
    if summary["best_acc"] is not None:
        head += f"; best of them {summary['best_acc']:.2f} (trial {summary['best_trial']})"
    head += f"; the table's best {summary['table_best']:.2f}"
    if summary["mean_regret"] is not None:
        head += (
            f"; mean regret {summary['mean_regret']:.2f} points to the best table entry "
            "within each trial's params and MACs"
        )
    return head


__all__ = ["TruthTable", "annotate_front", "load_truth", "truth_line"]
