"""The front as a table: every front trial in ``front.csv`` and ``front.md``, the thinned front
(:mod:`widthsearch.search.front`) on the page."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from widthsearch.report.truth import truth_line
from widthsearch.solve.costs import COST_KINDS, CostKind

if TYPE_CHECKING:
    import pandas as pd

FRONT_ROWS_SHOWN = 25
"""At most this many rows in the page's front table: the thinned front
(widthsearch.search.front)."""
SHOWN = {
    "trial": "trial",
    "log_synexp": "log SynExp",
    **{k.ratio_key: f"{k.column} ×base" for k in COST_KINDS.values()},
    "mode": "mode",
    **{f"budget_{k.name}": f"{k.column} budget" for k in COST_KINDS.values()},
    "min_width": "min width",
    "max_width": "max width",
    "divisor": "divisor",
    "width_ratio_min": "narrowest ×base",
    "width_ratio_max": "widest ×base",
    "truth_acc": "table accuracy",
    "truth_oracle": "table best within",
}
"""Front columns on the page (all of them, with the widths, are in front.csv); a cost kind's
columns show where the study has its figures (:func:`costs_of`)."""


def costs_of(report: dict[str, Any]) -> list[CostKind]:
    """The cost kinds a study has figures for: params, MACs and every modelled kind whose base
    value it stored."""
    return [k for k in COST_KINDS.values() if k.build is None or report.get(k.base_key)]


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def front_table(report: dict[str, Any]) -> pd.DataFrame:
    """Every front trial of ``report`` (:func:`widthsearch.search.load_front`), best log SynExp
    first: its costs, its mix and its widths."""
    import pandas as pd

    base = report.get("base_widths") or []
    fixed = set(report.get("fixed_groups") or [])
    kinds = costs_of(report)
    rows = []
    for t in sorted(report["front"], key=lambda t: -t["log_synexp"]):
        mix = t["mix"]
        pairs = enumerate(zip(t["widths"], base, strict=True))
        ratios = [w / b for i, (w, b) in pairs if i not in fixed]
        rows.append(
            {
                "trial": t["number"],
                "log_synexp": round(t["log_synexp"], 4),
                **{k.key: _round(t.get(k.key), 3) for k in kinds},
                **{k.ratio_key: _round(t.get(k.ratio_key), 4) for k in kinds},
                "mode": mix.get("mode"),
                **{f"budget_{k.name}": _round(mix.get(k.ratio_key), 4) for k in kinds},
                "min_width": round(mix.get("min_width", 0.0), 4),
                "max_width": round(mix.get("max_width", 1.0), 4),
                "divisor": mix.get("divisor"),
                "width_ratio_min": round(min(ratios), 3) if ratios else None,
                "width_ratio_max": round(max(ratios), 3) if ratios else None,
                "widths": " ".join(map(str, t["widths"])),
                **(
                    {"truth_acc": t["truth_acc"], "truth_oracle": t["truth_oracle"]}
                    if "truth" in report
                    else {}
                ),
            }
        )
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the tabulate package)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def front_html(report: dict[str, Any], table: pd.DataFrame) -> str:
    """The page's front section under its heading: the thinned front's rows of ``table``,
    cheapest MACs first, with what the thinning left out."""
    columns = [c for c in SHOWN if c in table.columns]
    thinned = table[table["trial"].isin(report["shown"])].sort_values(["macs", "params"])
    shown = thinned[columns].rename(columns=SHOWN)
    costs = "params, MACs and latency" if report.get("base_latency_ms") else "params and MACs"
    thinning = (
        f": every other one has one of these within {1 + report['eps']:g}&times; its {costs} "
        "with at least its log SynExp"
        if len(shown) < len(table)
        else ""
    )
    rows = shown.to_html(index=False, na_rep="free", border=0, float_format=lambda x: f"{x:.3f}")
    return f"""\
<p>{len(shown)} of the {len(table)} front trials, cheapest MACs first{thinning}; all of them,
with their widths, in <a href="front.csv">front.csv</a> and <a href="front.md">front.md</a>.
Budgets are the ratios of the trial's mix (free: unconstrained); narrowest/widest: the
smallest and largest width ratio over the free groups.{_truth_note(report)}</p>
<div class="wide">{rows}</div>"""


def _truth_note(report: dict[str, Any]) -> str:
    """What the ground-truth table (``--truth``) says of the front, for the front's note."""
    summary = report.get("truth")
    if not summary:
        return ""
    return (
        f" Table accuracy: {html.escape(truth_line(summary))} (empty: off the table's grid; "
        "table best within: the best entry within the trial's params and MACs)."
    )


__all__ = ["FRONT_ROWS_SHOWN", "SHOWN", "costs_of", "front_html", "front_table", "markdown"]
