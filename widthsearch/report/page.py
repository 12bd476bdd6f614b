"""A study as a report: one HTML page with the front, the width profiles and the verification.

:func:`write_report` reads everything from the study (its trials, its settings, the
verification summaries ``verify`` stored) and writes ``index.html``, ``pareto.png``,
``widths.png``, ``front.csv`` and ``front.md``. Nothing in the files depends on the time they
were made, so the same study gives the same files.
"""

from __future__ import annotations

import html
import io
import json
import os
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch._version import __version__
from widthsearch.hardware.timing import describe_load
from widthsearch.search.run import (
    DEFAULT_STORAGE,
    load_front,
    open_storage,
    stored_latency,
    trial_summary,
    widths_key,
)
from widthsearch.verify import (
    mean_std,
    pruned_text,
    quick_check,
    stored_verifications,
    verdict_text,
)

if TYPE_CHECKING:
    import pandas as pd

FILES = ("index.html", "pareto.png", "widths.png", "front.csv", "front.md")
FRONT_ROWS_SHOWN = 25
"""At most this many rows in the page's front table: the thinned front
(widthsearch.search.front)."""
SHOWN = {
    "trial": "trial",
    "log_synexp": "log SynExp",
    "params_ratio": "params ×base",
    "macs_ratio": "MACs ×base",
    "latency_ratio": "latency ×base",
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
                "latency_ms": None if t.get("latency_ms") is None else round(t["latency_ms"], 3),
                "latency_ratio": None
                if t.get("latency_ratio") is None
                else round(t["latency_ratio"], 4),
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


def _pareto_figure(report, trials, verification, latency=None) -> bytes:
    """log SynExp against MACs, params and (where the study predicts it) latency; verified
    top-1 against MACs and predicted latency. ``latency(widths)``: the study's latency model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_latency = latency is not None and bool(report.get("base_latency_ms"))
    panels = 2 + has_latency + (1 + has_latency) * bool(verification)
    rows = 1 if panels <= 3 else 2
    cols = panels if rows == 1 else -(-panels // 2)
    fig, grid = plt.subplots(
        rows, cols, figsize=(5.2 * cols, 4.4 * rows), constrained_layout=True, squeeze=False
    )
    axes = [ax for row in grid for ax in row]
    front_keys = {widths_key(t["widths"]) for t in report["front"]}
    verified = {
        widths_key(r["widths"])
        for r in (verification or {}).get("results", [])
        if r["kind"] == "candidate"
    }
    scatter = [
        (axes[0], "macs_ratio", "MACs / base MACs"),
        (axes[1], "params_ratio", "params / base params"),
    ]
    if has_latency:
        scatter.append((axes[2], "latency_ratio", "predicted latency / base's"))
    for ax, key, label in scatter:
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
    if has_latency:
        axes[2].set_title("log SynExp against predicted latency")
    if verification:
        c, h, w = verification["input_size"]
        n = verification["recipe"]["epochs"]
        _, sh, sw = report["input_size"]
        base_ms = report.get("base_latency_ms")
        xs = [(lambda r: r["macs"] / 1e6, f"MACs (millions, model as trained at {h}x{w})")]
        if has_latency:
            xs.append(
                (
                    lambda r: latency(r["widths"]) / base_ms,
                    f"predicted latency / base's (at the search's {sh}x{sw})",
                )
            )
        for ax, (x_of, xlabel) in zip(axes[2 + has_latency :], xs, strict=False):
            _verified_panel(ax, verification, x_of)
            ax.set_xlabel(xlabel)
            ax.set_title(f"verified: {verification['data']}, {n} epoch{'s' * (n != 1)}")
    for ax in axes[panels:]:
        ax.set_visible(False)
    data = _png(fig)
    plt.close(fig)
    return data


def _verified_panel(ax, verification, x_of) -> None:
    colors = {"candidate": "#d62728", "base": "black", "control": "#2ca02c", "random": "#7f7f7f"}
    markers = {"candidate": "o", "base": "*", "control": "s", "random": "^"}
    labelled = set()
    for r in verification["results"]:
        if r.get("same_as") or not r["seeds"]:
            continue
        # random controls share one legend entry
        label = "random shapes" if r["kind"] == "random" else r["candidate"]
        std = r["top1_std"] if r.get("n", len(r["seeds"])) > 1 else None
        ax.errorbar(
            x_of(r),
            100 * r["top1"],
            yerr=None if std is None else 100 * std,
            fmt=markers[r["kind"]],
            color=colors[r["kind"]],
            markersize=12 if r["kind"] == "base" else 8,
            capsize=4,
            label=None if label in labelled else label,
        )
        labelled.add(label)
    ax.set_ylabel(f"validation top-1 % (mean ± std over n={len(verification['seeds'])} seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


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


def _verdict_cell(v: dict[str, Any] | None) -> str:
    """A verdict in a table cell, coloured by its label."""
    if v is None:
        return ""
    label = v["label"]
    kind = {"better": "better", "worse": "worse"}.get(label, "same")
    return f"<span class='{kind}'>{html.escape(verdict_text(v))}</span>"


def _ms(ms: float | None, base_ms: float | None) -> str:
    """Measured milliseconds with the ratio to the base's in brackets."""
    if not ms:
        return "-"
    return f"{ms:.2f}" + (f" ({ms / base_ms:.2f}&times;)" if base_ms else "")


def _verify_html(v: dict[str, Any]) -> str:
    c, h, w = v["input_size"]
    r = v["recipe"]
    base = next((s for s in v["results"] if s["kind"] == "base"), {})
    ranked = [s for s in v["results"] if s["seeds"] and not s.get("same_as")]
    best = max(ranked, key=lambda s: s["top1"], default=None)
    randoms = sum(s["kind"] == "random" for s in v["results"])
    timed = any(s.get("latency_ms") for s in v["results"])
    rows = []
    for s in v["results"]:
        name = html.escape(s["candidate"] + (f" (= {s['same_as']})" if s.get("same_as") else ""))
        n = s.get("n", len(s["seeds"]))
        top1 = mean_std(s["top1"], s["top1_std"], n, 100)
        loss = mean_std(s["loss"], s["loss_std"], n, digits=3)
        cells = [
            name,
            s["kind"],
            f"{s['log_synexp']:+.2f}",
            _count(s["search_params"], base.get("search_params")),
            _count(s["search_macs"], base.get("search_macs")),
            _count(s["params"], base.get("params")),
            _count(s["macs"], base.get("macs")),
            *([_ms(s.get("latency_ms"), base.get("latency_ms"))] if timed else []),
            f"<b>{top1}</b>" if s is best else top1,
            "pruned" if s.get("pruned") and not s["seeds"] else _verdict_cell(s.get("vs_base")),
            "pruned" if s.get("pruned") and not s["seeds"] else _verdict_cell(s.get("vs_control")),
            *([_verdict_cell(s.get("vs_random"))] if randoms else []),
            loss,
            html.escape(", ".join(pruned_text(p) for p in s.get("pruned") or [])) or "-",
            f"{s['images_per_second']:.0f}" if s["seeds"] else "-",
        ]
        rows.append(f"<tr class='{s['kind']}'>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    seeds = ", ".join(map(str, v["seeds"]))
    n = r["epochs"]
    quick = quick_check(r)
    quick_html = f" <b>Quick check</b>: {html.escape(quick)}; not a full run." if quick else ""
    notes = "".join(f'<p class="warn">{html.escape(t)}</p>' for t in v.get("notes", []))
    verdicts = v.get("verdicts")
    verdict_html = (
        "<ul class='verdict'>" + "".join(f"<li>{html.escape(t)}</li>" for t in verdicts) + "</ul>"
        if verdicts
        else ""
    )
    n_val = v.get("val_images")
    image = f" ({100 / n_val:.2f} points)" if n_val else ""
    random_th = "<th>vs random (points)</th>" if randoms else ""
    cost = "params" if v.get("match") == "params" else "MACs"
    matched = "; controls at the candidate's params" if cost == "params" else ""
    latency_th = "<th>latency ms (measured)</th>" if timed else ""
    latency_html = (
        f" Latency: one forward pass of the model as trained, measured on "
        f"{html.escape(v['latency_device'])}{describe_load(v.get('latency_load'))}; equal MACs "
        "need not be equal time."
        if timed and v.get("latency_device")
        else ""
    )
    random_html = (
        f" The {randoms} random-shape controls draw each channel group's multiplier at random "
        "(log-uniform, as uneven as the candidate) and scale the whole vector to the same "
        f"{cost}; vs random compares the candidate with their mean, seed by seed."
        if randoms
        else ""
    )
    return f"""
<h3>{html.escape(v["data_description"])}{matched}</h3>
<p class="scale">Trained from scratch at {c}&times;{h}&times;{w} on {html.escape(v["device"])}:
{n} epoch{"s" * (n != 1)}, batch {r["batch_size"]}, AdamW (peak lr {r["lr"]:g},
weight decay {r["weight_decay"]:g}, warm-up {r["warmup_epochs"]:g} epoch, cosine), label
smoothing {r["label_smoothing"]:g}; {html.escape(r.get("augment", "none"))} augmentation,
{html.escape(r.get("stem", "timm"))} stem, {html.escape(r.get("head", "timm"))} head; seeds {seeds}
(n={len(v["seeds"])}).{quick_html}
Candidates: {html.escape(v["pick"])}. The uniform control is the largest single width
multiplier within the first candidate's {cost} as trained.{random_html}</p>
{verdict_html}
<table>
<thead><tr><th>candidate</th><th>kind</th><th>log SynExp</th><th>params (search)</th>
<th>MACs (search)</th><th>params (trained)</th><th>MACs (trained)</th>{latency_th}
<th>top-1 %</th><th>vs base (points)</th><th>vs control (points)</th>{random_th}<th>val loss</th>
<th>pruned runs</th><th>img/s</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{notes}
<p class="note">Search columns: the model at the search's input size with its original
classifier; trained columns: the model as trained ({v["num_classes"]} classes,
{h}&times;{w}), counted on the real module; in brackets the ratio to the base. Top-1 and loss:
the last epoch on the validation split, mean ± std over seeds (n=1: one seed, no spread); bold:
the best mean top-1. vs base, vs control: the top-1 difference in points, paired by seed (same
initialization and data order), as mean ± half its 95% Student-t interval over the seeds;
<i>better</i> or <i>worse</i> only when the interval excludes zero, else <i>no detectable
difference</i>. The spread used is at least one validation image{image}; intervals are per
comparison, not corrected for the number of candidates. img/s: training throughput.{latency_html}
Pruner: {html.escape(PRUNERS_SAID.get(v.get("pruner") or "none", str(v.get("pruner"))))};
a pruned run is shown with the epoch it was stopped at and its top-1 then, and is left out of
the mean, the spread and the paired verdicts (completed seeds only).
{_study_note(v)}</p>
"""


PRUNERS_SAID = {
    "sha": "successive halving (a run goes on at epochs r, 3r, 9r only in the best third of "
    "the runs that reached that epoch; base and control always finish)",
    "hyperband": "Hyperband (brackets of successive halving; base and control always finish)",
    "median": "median (a run below the median of earlier runs at an epoch stops)",
    "none": "none (every run trained to its end)",
}


def _study_note(v: dict[str, Any]) -> str:
    name = v.get("verification_study")
    if not name:
        return ""
    return (
        f"Every run is a trial of the Optuna study <code>{html.escape(name)}</code> in the "
        "same storage, with its top-1 per epoch (optuna-dashboard draws the curves)."
    )


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
    own = [r for r in v["results"] if not r.get("same_as")]
    runs = sum(len(r["seeds"]) for r in own)
    minutes = sum(r["wall_seconds"] for r in own) / 60
    shared = sum(r.get("shared", 0) for r in own)
    elsewhere = sorted({name for r in own for name in r.get("shared_from", [])})
    taken = (
        f" ({shared} of them trained by another verification with the same recipe and taken "
        f"over: {', '.join(f'<code>{html.escape(e)}</code>' for e in elsewhere)})"
        if shared
        else ""
    )
    n = v["recipe"]["epochs"]
    quick = quick_check(v["recipe"])
    return text + (
        f"Verification: {runs} training runs from scratch{taken} on "
        f"{html.escape(v['data_description'])} at {th}&times;{tw}, {n} epoch{'s' * (n != 1)} each"
        + (f" (<b>quick check</b>: {html.escape(quick)})" if quick else "")
        + f", {html.escape(v['recipe'].get('stem', 'timm'))} stem, "
        f"{html.escape(v['recipe'].get('head', 'timm'))} head, on {html.escape(v['device'])} "
        f"({minutes:.0f} minutes in all{', theirs included' if shared else ''}). That checks "
        "that the chosen widths train and how they rank at small scale; it is not an ImageNet "
        "result."
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
tr.random td { background: #f7f7fb; }
.better { color: #1a7f37; font-weight: 600; } .worse { color: #c62828; font-weight: 600; }
.same { color: #555; }
.verdict { background: #eef3fb; border-left: 4px solid #1f77b4; padding: 0.5em 0.9em 0.5em 2em; }
pre { background: #f4f4f4; padding: 0.6em 0.9em; overflow-x: auto; }
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

    def times_base(text: str) -> str:
        return text if text == "free" else f"{text} &times; base"

    c, h, w = report["input_size"]
    modes = ranges.get("mode") or []
    if modes == ["precrop"]:
        max_width = "1 (PreCrop: widths never exceed the base)"
    elif "precrop" in modes:
        max_width = f"{rng('max_width')} &times; base (PreConfig); 1 (PreCrop)"
    else:
        max_width = f"{rng('max_width')} &times; base"
    if "sampler" in attrs:
        seed = attrs.get("seed")
        sampler = f"{html.escape(str(attrs['sampler']))}, seed {'none' if seed is None else seed}"
    else:
        sampler = "not recorded (the study predates widthsearch storing them)"
    items = [
        ("model", f"<code>{html.escape(report['model'])}</code> at {c}&times;{h}&times;{w}"),
        ("base", f"{report['base_params']:,} params, {report['base_macs']:,} MACs per image"),
        ("trials", f"{report['trials']} finished (front: {len(report['front'])})"),
        ("sampler, seed", sampler),
        ("params budget", times_base(rng("params"))),
        ("MACs budget", times_base(rng("macs"))),
        *(
            [
                ("latency budget", times_base(rng("latency"))),
                ("latency model", html.escape(report.get("latency_model") or "")),
            ]
            if report.get("base_latency_ms")
            else []
        ),
        *(
            [("memory budget", times_base(rng("memory")) + " (training activations)")]
            if ranges.get("memory")
            else []
        ),
        ("min width", f"{rng('min_width')} &times; base"),
        ("max width", max_width),
        ("divisor, mode", f"{rng('divisor')}; {rng('mode')}"),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


def shown_storage(url: str | None) -> str:
    """The storage URL as a command line takes it, with any password hidden."""

    url = url or DEFAULT_STORAGE
    if "://" in url and not url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        try:
            return make_url(url).render_as_string(hide_password=True)
        except Exception:  # not an SQLAlchemy URL: show it as given
            return url
    return url


def _toml(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def study_toml(study_name: str, report: dict[str, Any], attrs: dict[str, Any]) -> str:
    """A study file with the stored study's model, search settings and ranges: what
    ``widthsearch search --config`` needs to run the same search again."""
    lines = [f"model = {_toml(report['model'])}", f"input_size = {_toml(report['input_size'])}"]
    if attrs.get("timm_kwargs"):
        lines.append(f"timm_kwargs = {_toml(attrs['timm_kwargs'])}")
    lines += ["", "[search]", f"study = {_toml(study_name)}", f"trials = {report['trials']}"]
    if "sampler" in attrs:
        lines.append(f"sampler = {_toml(attrs['sampler'])}")
        if attrs.get("seed") is not None:
            lines.append(f"seed = {_toml(attrs['seed'])}")
    lines += ["", "[search.ranges]"]
    lines += [f"{k} = {_toml(v)}" for k, v in (attrs.get("ranges") or {}).items()]
    return "\n".join(lines) + "\n"


def reproduce_commands(
    study_name: str,
    storage_url: str | None,
    folder: str | os.PathLike,
    verifications: Sequence[dict[str, Any]],
    study_file: str | os.PathLike | None = None,
) -> list[str]:
    """The command lines that rebuild this report: search, each verification, report
    (``STUDY.toml`` stands for the study file when ``study_file`` is not known)."""
    q = shlex.quote
    storage = q(shown_storage(storage_url))
    config = q(str(study_file)) if study_file else "STUDY.toml"
    folder = str(folder)
    commands = [f"uv run widthsearch search --config {config} --storage {storage}"]
    for v in verifications:
        r, (c, h, w) = v["recipe"], v["input_size"]
        top = sum(1 for s in v["results"] if s["kind"] == "candidate")
        randoms = sum(1 for s in v["results"] if s["kind"] == "random")
        args = [
            f"uv run widthsearch verify {q(study_name)} --storage {storage} --top {top}"
            + (f" --random {randoms}" if randoms else ""),
            f"--data {q(v['data'])} --input-size {c},{h},{w} --epochs {r['epochs']}",
            f"--batch-size {r['batch_size']} --lr {r['lr']:g} --seeds "
            + ",".join(map(str, v["seeds"])),
        ]
        # a recipe without augment/stem/head predates them: none, timm and timm (the CLI's
        # defaults are auto, timm and auto, so they are always spelled out)
        args.append(
            f"--augment {r.get('augment', 'none')} --stem {r.get('stem', 'timm')} "
            f"--head {r.get('head', 'timm')}"
        )
        if r.get("max_steps") is not None:
            args.append(f"--max-steps {r['max_steps']}")
        if r.get("train_subset") is not None:
            args.append(f"--train-subset {r['train_subset']}")
        if v.get("pruner"):
            args.append(f"--pruner {v['pruner']}")
        if v.get("match", "macs") != "macs":
            args.append(f"--match {v['match']}")
        args.append(f"--out {q(str(Path(folder) / 'verify.csv'))}")
        commands.append(" ".join(args))
    commands.append(f"uv run widthsearch report {q(study_name)} --storage {storage} -o {q(folder)}")
    return commands


def _reproduce_html(
    study_name: str,
    storage_url: str | None,
    folder: Path,
    report: dict[str, Any],
    attrs: dict[str, Any],
    verifications: Sequence[dict[str, Any]],
    study_file: str | os.PathLike | None,
) -> str:
    commands = reproduce_commands(study_name, storage_url, folder, verifications, study_file)
    storage = html.escape(shown_storage(storage_url))
    parts = [f"<p>Storage: <code>{storage}</code>.</p>"]
    if study_file:
        one = f"uv run widthsearch run {shlex.quote(str(study_file))} --storage "
        one += shlex.quote(shown_storage(storage_url))
        parts.append(
            "<p>In one command (search, verify and report; each step resumes):</p>"
            f"<pre>{html.escape(one)}</pre><p>or step by step:</p>"
        )
    else:
        toml = html.escape(study_toml(study_name, report, attrs))
        parts.append(
            "<p>The study's stored settings as a study file (save it as "
            f"<code>STUDY.toml</code>):</p><pre>{toml}</pre><p>then:</p>"
        )
    parts.append(f"<pre>{html.escape(chr(10).join(commands))}</pre>")
    return "\n".join(parts)


def _verdict_summary(verifications: Sequence[dict[str, Any]]) -> str:
    """The verdicts of the latest verification, for the top of the page: those of its recipe,
    with its controls matched on MACs and, where it was run, on params."""
    if not verifications:
        return ""
    v = verifications[-1]
    same = [u for u in verifications if u.get("recipe_key") == v.get("recipe_key")] or [v]
    same.sort(key=lambda u: u.get("match", "macs") != "macs")
    lines = [
        ("controls at its params: " if u.get("match") == "params" else "") + t
        for u in same
        for t in u.get("verdicts") or []
    ]
    if not lines:
        return ""
    items = "".join(f"<li>{html.escape(t)}</li>" for t in lines)
    n = len(v["seeds"])
    return (
        f"<div class='verdict'><b>Verdict</b> (validation top-1, paired by seed over n={n} "
        f"seed{'s' * (n != 1)}, 95% interval; see Verification):<ul>{items}</ul></div>"
    )


def write_report(
    study_name: str,
    storage_url: str | None,
    folder: str | os.PathLike,
    *,
    study_file: str | os.PathLike | None = None,
) -> ReportResult:
    """Write the report of a stored study into ``folder`` (created if needed).

    ``study_file`` is the study file the study was run from, named in the page's commands.
    """
    import optuna

    report = load_front(study_name, storage_url, rows=FRONT_ROWS_SHOWN)
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    attrs = study.user_attrs
    base = {
        "params": report["base_params"],
        "macs": report["base_macs"],
        "latency_ms": report.get("base_latency_ms"),
        "memory_bytes": report.get("base_memory_bytes"),
    }
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
    lat_cost = stored_latency(attrs)
    latency = None if lat_cost is None else (lambda w: float(lat_cost(w)))
    write_atomic(out / "pareto.png", _pareto_figure(report, trials, main, latency))
    write_atomic(out / "widths.png", _widths_figure(report, _profiles(report, main)))

    columns = [c for c in SHOWN if c != "latency_ratio" or report.get("base_latency_ms")]
    thinned = table[table["trial"].isin(report["shown"])].sort_values(["macs", "params"])
    shown = thinned[columns].rename(columns=SHOWN)
    costs = "params, MACs and latency" if report.get("base_latency_ms") else "params and MACs"
    thinning = (
        f": every other one has one of these within {1 + report['eps']:g}&times; its {costs} "
        "with at least its log SynExp"
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
    objectives_extra = ", min predicted latency" if report.get("base_latency_ms") else ""

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
{_verdict_summary(verifications)}

<h2>Search settings</h2>
{_settings_html(report, attrs)}

<h2>Pareto front</h2>
<img src="pareto.png" alt="log SynExp against MACs and params; verified accuracy">
<p class="note">Each point is one trial's rounded widths (duplicates removed). Blue: the
Pareto front in (max log SynExp, min params, min MACs{objectives_extra}), so a front point can
look dominated in one 2-D projection. Star: the base model (log SynExp gain 0 at 1&times; cost).</p>

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
{_reproduce_html(study_name, storage_url, out, report, attrs, verifications, study_file)}
<p class="note">widthsearch {__version__}, timm {timm_version}, optuna {optuna.__version__}.</p>
</body></html>
"""
    write_atomic(out / "index.html", page)
    return ReportResult(out, FILES, len(report["front"]), len(verifications))


__all__ = ["FILES", "ReportResult", "default_folder", "write_report"]
