"""A study as a report: one HTML page with the front, the width profiles and the verification.

:func:`write_report` reads everything from the study (its trials, its settings, the
verification summaries ``verify`` stored) and writes ``index.html``, ``pareto.png``,
``widths.png``, ``front.csv`` and ``front.md``. Nothing in the files depends on the time they
were made, so the same study gives the same files.
"""

from __future__ import annotations

import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._io import write_atomic
from .search import load_front, open_storage, trial_summary, widths_key
from .verify import mean_std, stored_verifications

if TYPE_CHECKING:
    import pandas as pd

FILES = ("index.html", "pareto.png", "widths.png", "front.csv", "front.md")
FRONT_ROWS_SHOWN = 25
"""At most this many rows in the page's front table: the thinned front (widthsearch.pareto)."""
SHOWN = {
    "trial": "trial",
    "log_synexp": "log SynExp",
    "params_ratio": "params ×base",
    "macs_ratio": "MACs ×base",
    "mode": "mode",
    "budget_params": "params budget",
    "budget_macs": "MACs budget",
    "min_width": "min width",
    "max_width": "max width",
    "divisor": "divisor",
    "width_ratio_min": "narrowest ×base",
    "width_ratio_max": "widest ×base",
}
"""Front columns on the page (all of them, with the widths, are in front.csv)."""
PROFILES = 3
"""Width profiles drawn when nothing was verified: the front's best by log SynExp."""


def default_folder(study_name: str) -> Path:
    """Where a study's report goes when nothing says otherwise."""
    return Path("reports") / study_name


@dataclass(frozen=True)
class ReportResult:
    folder: Path
    files: tuple[str, ...]
    front_size: int
    verified: int
    """Verification runs (recipe settings) shown."""


def _front_table(report: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    base = report.get("base_widths") or []
    fixed = set(report.get("fixed_groups") or [])
    rows = []
    for t in sorted(report["front"], key=lambda t: -t["log_synexp"]):
        mix = t["mix"]
        pairs = enumerate(zip(t["widths"], base, strict=True))
        ratios = [w / b for i, (w, b) in pairs if i not in fixed]
        rows.append(
            {
                "trial": t["number"],
                "log_synexp": round(t["log_synexp"], 4),
                "params": t["params"],
                "macs": t["macs"],
                "params_ratio": round(t["params_ratio"], 4),
                "macs_ratio": round(t["macs_ratio"], 4),
                "mode": mix.get("mode"),
                "budget_params": None
                if mix.get("params_ratio") is None
                else round(mix["params_ratio"], 4),
                "budget_macs": None
                if mix.get("macs_ratio") is None
                else round(mix["macs_ratio"], 4),
                "min_width": round(mix.get("min_width", 0.0), 4),
                "max_width": round(mix.get("max_width", 1.0), 4),
                "divisor": mix.get("divisor"),
                "width_ratio_min": round(min(ratios), 3) if ratios else None,
                "width_ratio_max": round(max(ratios), 3) if ratios else None,
                "widths": " ".join(map(str, t["widths"])),
            }
        )
    return pd.DataFrame(rows)


def _markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (pandas' own needs the tabulate package)."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def _pareto_figure(report, trials, verification) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 3 if verification else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4), constrained_layout=True)
    front_keys = {widths_key(t["widths"]) for t in report["front"]}
    verified = {
        widths_key(r["widths"])
        for r in (verification or {}).get("results", [])
        if r["kind"] == "candidate"
    }
    for ax, key, label in (
        (axes[0], "macs_ratio", "MACs / base MACs"),
        (axes[1], "params_ratio", "params / base params"),
    ):
        rest = [t for t in trials if widths_key(t["widths"]) not in front_keys]
        ax.scatter(
            [t[key] for t in rest],
            [t["log_synexp"] for t in rest],
            s=10,
            c="#b8b8b8",
            label=f"other trials ({len(rest)})",
        )
        ax.scatter(
            [t[key] for t in report["front"]],
            [t["log_synexp"] for t in report["front"]],
            s=18,
            c="#1f77b4",
            label=f"Pareto front ({len(report['front'])})",
        )
        ver = [t for t in report["front"] if widths_key(t["widths"]) in verified]
        if ver:
            ax.scatter(
                [t[key] for t in ver],
                [t["log_synexp"] for t in ver],
                s=90,
                facecolors="none",
                edgecolors="#d62728",
                linewidths=1.5,
                label="verified by training",
            )
        ax.scatter([1.0], [0.0], marker="*", s=220, c="black", label="base model", zorder=5)
        ax.set_xlabel(label)
        ax.set_ylabel("log SynExp gain over base")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title("log SynExp against MACs")
    axes[1].set_title("log SynExp against params")
    if verification:
        ax = axes[2]
        colors = {"candidate": "#d62728", "base": "black", "control": "#2ca02c"}
        markers = {"candidate": "o", "base": "*", "control": "s"}
        for r in verification["results"]:
            if r.get("same_as") or not r["seeds"]:
                continue
            ax.errorbar(
                r["macs"] / 1e6,
                100 * r["top1"],
                yerr=100 * r["top1_std"],
                fmt=markers[r["kind"]],
                color=colors[r["kind"]],
                markersize=12 if r["kind"] == "base" else 8,
                capsize=4,
                label=r["candidate"],
            )
        c, h, w = verification["input_size"]
        ax.set_xlabel(f"MACs (millions, model as trained at {h}x{w})")
        ax.set_ylabel("validation top-1 % (mean ± std over seeds)")
        n = verification["recipe"]["epochs"]
        ax.set_title(f"verified: {verification['data']}, {n} epoch{'s' * (n != 1)}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    data = _png(fig)
    plt.close(fig)
    return data


def _widths_figure(report, profiles: Sequence[tuple[str, Sequence[int]]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = report["base_widths"]
    fixed = set(report.get("fixed_groups") or [])
    free = [i for i in range(len(base)) if i not in fixed]
    x = list(range(len(free)))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.22 * len(free) + 3), 4.6), constrained_layout=True)
    ax.bar(x, [base[i] for i in free], color="#d9d9d9", edgecolor="#a0a0a0", label="base")
    palette = ["#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    for k, (label, widths) in enumerate(profiles):
        ax.plot(
            x,
            [widths[i] for i in free],
            marker="o",
            markersize=3.5,
            linewidth=1.3,
            color=palette[k % len(palette)],
            label=label,
        )
    ax.set_yscale("log", base=2)
    ax.set_xticks(x, [str(i) for i in free], fontsize=7, rotation=90 if len(free) > 40 else 0)
    ax.set_xlabel("channel group (ids as in `widthsearch inspect`), input to output")
    ax.set_ylabel("channels (log scale)")
    ax.set_title(f"{report['model']}: width per channel group, base against chosen configs")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    data = _png(fig)
    plt.close(fig)
    return data


def _profiles(report, verification) -> list[tuple[str, list[int]]]:
    if verification:
        picked = [
            (f"{r['candidate']} (verified)", r["widths"])
            for r in verification["results"]
            if r["kind"] in ("candidate", "control") and not r.get("same_as")
        ]
        if picked:
            return picked
    best = sorted(report["front"], key=lambda t: -t["log_synexp"])[:PROFILES]
    return [(f"trial {t['number']} ({t['log_synexp']:+.1f})", t["widths"]) for t in best]


def _verify_html(v: dict[str, Any]) -> str:
    c, h, w = v["input_size"]
    r = v["recipe"]
    base = next((s for s in v["results"] if s["kind"] == "base"), {})
    rows = []
    for s in v["results"]:
        name = html.escape(s["candidate"] + (f" (= {s['same_as']})" if s.get("same_as") else ""))
        top1 = mean_std(s["top1"], s["top1_std"], 100)
        loss = mean_std(s["loss"], s["loss_std"], digits=3)
        cells = [
            name,
            s["kind"],
            f"{s['log_synexp']:+.2f}",
            _count(s["search_params"], base.get("search_params")),
            _count(s["search_macs"], base.get("search_macs")),
            _count(s["params"], base.get("params")),
            _count(s["macs"], base.get("macs")),
            f"<b>{top1}</b>",
            loss,
            f"{s['images_per_second']:.0f}" if s["seeds"] else "-",
        ]
        rows.append(f"<tr class='{s['kind']}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    seeds = ", ".join(map(str, v["seeds"]))
    n = r["epochs"]
    notes = "".join(f'<p class="warn">{html.escape(t)}</p>' for t in v.get("notes", []))
    return f"""
<h3>{html.escape(v["data_description"])}</h3>
<p class="scale">Trained from scratch at {c}&times;{h}&times;{w} on {html.escape(v["device"])}:
{n} epoch{"s" * (n != 1)}, batch {r["batch_size"]}, AdamW (peak lr {r["lr"]:g},
weight decay {r["weight_decay"]:g}, warm-up {r["warmup_epochs"]:g} epoch, cosine), label
smoothing {r["label_smoothing"]:g}; seeds {seeds}. Candidates: {html.escape(v["pick"])}. The
uniform control is the largest single width multiplier within the first candidate's MACs as
trained.</p>
<table>
<thead><tr><th>candidate</th><th>kind</th><th>log SynExp</th><th>params (search)</th>
<th>MACs (search)</th><th>params (trained)</th><th>MACs (trained)</th>
<th>top-1 %</th><th>val loss</th><th>img/s</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{notes}
<p class="note">Search columns: the model at the search's input size with its original
classifier; trained columns: the model as trained ({v["num_classes"]} classes,
{h}&times;{w}), counted on the real module; in brackets the ratio to the base. Top-1 and loss:
the last epoch on the validation split, mean ± std over seeds. img/s: training throughput.</p>
"""


def _scale(report: dict[str, Any], v: dict[str, Any] | None) -> str:
    """The sentence that says how big this experiment was."""
    c, h, w = report["input_size"]
    text = (
        f"Search: {report['trials']} trials, each one solve at {c}&times;{h}&times;{w} with "
        "params and MACs counted exactly, no training. "
    )
    if v is None:
        return text + "Nothing was trained for this report."
    _, th, tw = v["input_size"]
    runs = sum(len(r["seeds"]) for r in v["results"] if not r.get("same_as"))
    minutes = sum(r["wall_seconds"] for r in v["results"] if not r.get("same_as")) / 60
    n = v["recipe"]["epochs"]
    return text + (
        f"Verification: {runs} training runs from scratch on {html.escape(v['data_description'])}"
        f" at {th}&times;{tw}, {n} epoch{'s' * (n != 1)} each, on {html.escape(v['device'])} "
        f"({minutes:.0f} minutes in all). That checks that the chosen widths train and how they "
        "rank at small scale; it is not an ImageNet result."
    )


def _count(n: int | None, base: int | None) -> str:
    if n is None:
        return "-"
    text = f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,}"
    return f"{text} ({n / base:.2f}&times;)" if base else text


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1180px;
       margin: 2em auto; padding: 0 1.2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
.scale { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 0.9em; }
table { border-collapse: collapse; font-size: 0.88em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
tr.base td { background: #f2f2f2; } tr.control td { background: #eef7ee; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: 0.88em; }
.warn { background: #fdecea; border-left: 4px solid #d62728; padding: 0.5em 0.9em; }
.wide { overflow-x: auto; } code { background: #f4f4f4; padding: 0 0.25em; }
dl { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; }
"""


def _settings_html(report: dict[str, Any], attrs: dict[str, Any]) -> str:
    ranges = attrs.get("ranges") or {}

    def rng(key: str) -> str:
        v = ranges.get(key)
        if v is None:
            return "free"
        if key in ("divisor", "mode"):
            return ", ".join(map(str, v))
        return f"{v[0]:g}" if v[0] == v[1] else f"{v[0]:g}&ndash;{v[1]:g}"

    c, h, w = report["input_size"]
    items = [
        ("model", f"<code>{html.escape(report['model'])}</code> at {c}&times;{h}&times;{w}"),
        ("base", f"{report['base_params']:,} params, {report['base_macs']:,} MACs per image"),
        ("trials", f"{report['trials']} finished (front: {len(report['front'])})"),
        ("params budget", f"{rng('params')} &times; base"),
        ("MACs budget", f"{rng('macs')} &times; base"),
        ("min / max width", f"{rng('min_width')} / {rng('max_width')} &times; base"),
        ("divisor, mode", f"{rng('divisor')}; {rng('mode')}"),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def write_report(
    study_name: str,
    storage_url: str | None,
    folder: str | os.PathLike,
    *,
    command: str | None = None,
) -> ReportResult:
    """Write the report of a stored study into ``folder`` (created if needed).

    ``command`` is the command line that reproduces the study, shown on the page.
    """
    import optuna

    report = load_front(study_name, storage_url, rows=FRONT_ROWS_SHOWN)
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    attrs = study.user_attrs
    base = {"params": report["base_params"], "macs": report["base_macs"]}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    trials = [
        trial_summary(t, base)
        for t in complete
        if t.values is not None and "widths" in t.user_attrs and "duplicate_of" not in t.user_attrs
    ]
    verifications = stored_verifications(study)
    main = verifications[-1] if verifications else None
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)

    table = _front_table(report)
    write_atomic(out / "front.csv", table.to_csv(index=False, lineterminator="\n"))
    write_atomic(out / "front.md", _markdown(table))
    write_atomic(out / "pareto.png", _pareto_figure(report, trials, main))
    write_atomic(out / "widths.png", _widths_figure(report, _profiles(report, main)))

    thinned = table[table["trial"].isin(report["shown"])].sort_values(["macs", "params"])
    shown = thinned[list(SHOWN)].rename(columns=SHOWN)
    thinning = (
        f": every other one has one of these within {1 + report['eps']:g}&times; its params "
        "and MACs with at least its log SynExp"
        if len(shown) < len(table)
        else ""
    )
    front_html = shown.to_html(
        index=False, na_rep="free", border=0, float_format=lambda x: f"{x:.3f}"
    )
    verify_html = (
        "".join(_verify_html(v) for v in reversed(verifications))
        if verifications
        else "<p>No verification has run on this study (<code>widthsearch verify</code>).</p>"
    )
    if verifications and (out / "verify.csv").is_file():
        verify_html += '<p>Every run, seed by seed: <a href="verify.csv">verify.csv</a>.</p>'

    c, h, w = report["input_size"]
    from . import __version__

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        timm_version = "?"
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>widthsearch: {html.escape(study_name)}</title><style>{STYLE}</style></head>
<body>
<h1>widthsearch report: {html.escape(study_name)}</h1>
<p class="sub">{html.escape(report["model"])} at {c}&times;{h}&times;{w}: channel widths chosen at
initialization by SynExp (maximize &Sigma; log p<sub>l</sub> under params and MACs budgets), one
geometric program per trial; Optuna explores the constraint mixes.</p>
<p class="scale"><b>Scale.</b> {_scale(report, main)}</p>

<h2>Search settings</h2>
{_settings_html(report, attrs)}

<h2>Pareto front</h2>
<img src="pareto.png" alt="log SynExp against MACs and params; verified accuracy">
<p class="note">Each point is one trial's rounded widths (duplicates removed). Blue: the
Pareto front in (max log SynExp, min params, min MACs), so a front point can look dominated in
one 2-D projection. Star: the base model (log SynExp gain 0 at 1&times; cost).</p>

<h2>Verification by training</h2>
{verify_html}

<h2>Width profiles</h2>
<img src="widths.png" alt="channels per group: base against chosen configurations">
<p class="note">Grey bars: base widths of the free channel groups; lines: the configurations
{"verified above" if main else "with the highest log SynExp on the front"}.</p>

<h2>Front</h2>
<p>{len(shown)} of the {len(table)} front trials, cheapest MACs first{thinning}; all of them,
with their widths, in <a href="front.csv">front.csv</a> and <a href="front.md">front.md</a>.
Budgets are the ratios of the trial's mix (free: unconstrained); narrowest/widest: the
smallest and largest width ratio over the free groups.</p>
<div class="wide">{front_html}</div>

<h2>Reproduce</h2>
<p><code>{html.escape(command or f"uv run widthsearch report {study_name} -o {out}")}</code></p>
<p class="note">widthsearch {__version__}, timm {timm_version}, optuna {optuna.__version__}.</p>
</body></html>
"""
    write_atomic(out / "index.html", page)
    return ReportResult(out, FILES, len(report["front"]), len(verifications))


__all__ = ["FILES", "ReportResult", "default_folder", "write_report"]
