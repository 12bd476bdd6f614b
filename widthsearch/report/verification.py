"""The page's verification section: per stored verification its recipe, its verdicts and one
table row per trained model, with what the columns mean."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from widthsearch.hardware.timing import describe_load
from widthsearch.verify import mean_std, pruned_text, quick_check, verdict_text

PRUNERS_SAID = {
    "sha": "successive halving (a run goes on at epochs r, 3r, 9r only in the best third of "
    "the runs that reached that epoch; base and control always finish)",
    "hyperband": "Hyperband (brackets of successive halving; base and control always finish)",
    "median": "median (a run below the median of earlier runs at an epoch stops)",
    "none": "none (every run trained to its end)",
}
"""What each pruner does, as the page says it."""


def _verdict_cell(v: dict[str, Any] | None) -> str:
    """A verdict in a table cell, coloured by its label."""
    if v is None:
        return ""
    label = v["label"]
    kind = {"better": "better", "worse": "worse"}.get(label, "same")
    number, sep, said = verdict_text(v).partition(", ")
    said = html.escape(said)
    if said == "no detectable difference":  # said in full in the verdicts above the table
        said = f"<abbr title='{said}'>n.d.</abbr>"
    text = f"<span class='num'>{html.escape(number)}</span>{sep}{said}"
    return f"<span class='{kind}'>{text}</span>"


def _ms(ms: float | None, base_ms: float | None) -> str:
    """Measured milliseconds with the ratio to the base's in brackets."""
    if not ms:
        return "-"
    return f"{ms:.2f}" + (f"<br>({ms / base_ms:.2f}&times;)" if base_ms else "")


def _count(n: int | None, base: int | None) -> str:
    """A parameter or MAC count (millions from a million on) with the ratio to the base's."""
    if n is None:
        return "-"
    text = f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,}"
    return f"{text}<br>({n / base:.2f}&times;)" if base else text


def _row(s: dict[str, Any], base: dict[str, Any], bold: bool, timed: bool, randoms: int) -> str:
    """One trained model's table row; ``bold``: it has the best mean top-1."""
    name = html.escape(s["candidate"] + (f" (= {s['same_as']})" if s.get("same_as") else ""))
    n = s.get("n", len(s["seeds"]))
    top1 = mean_std(s["top1"], s["top1_std"], n, 100)
    loss = mean_std(s["loss"], s["loss_std"], n, digits=3).replace(" ± ", "<br>± ", 1)
    cells = [
        name,
        s["kind"],
        f"{s['log_synexp']:+.2f}",
        _count(s["search_params"], base.get("search_params")),
        _count(s["search_macs"], base.get("search_macs")),
        _count(s["params"], base.get("params")),
        _count(s["macs"], base.get("macs")),
        *([_ms(s.get("latency_ms"), base.get("latency_ms"))] if timed else []),
        f"<b>{top1}</b>" if bold else top1,
        "pruned" if s.get("pruned") and not s["seeds"] else _verdict_cell(s.get("vs_base")),
        "pruned" if s.get("pruned") and not s["seeds"] else _verdict_cell(s.get("vs_control")),
        *([_verdict_cell(s.get("vs_random"))] if randoms else []),
        loss,
        html.escape(", ".join(pruned_text(p) for p in s.get("pruned") or [])) or "-",
        f"{s['images_per_second']:.0f}" if s["seeds"] else "-",
    ]
    verdicts = range(len(cells) - 5 - bool(randoms), len(cells) - 3)  # vs base ... vs random
    tds = "".join(
        f"<td class='v'>{c}</td>" if i in verdicts else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return f"<tr class='{s['kind']}'>" + tds + "</tr>"


def _study_note(v: dict[str, Any]) -> str:
    name = v.get("verification_study")
    if not name:
        return ""
    return (
        f"Every run is a trial of the Optuna study <code>{html.escape(name)}</code> in the "
        "same storage, with its top-1 per epoch (optuna-dashboard draws the curves)."
    )


def _verify_html(v: dict[str, Any]) -> str:
    """One stored verification summary as a heading, its recipe, its verdicts and its table."""
    c, h, w = v["input_size"]
    r = v["recipe"]
    base: dict[str, Any] = next((s for s in v["results"] if s["kind"] == "base"), {})
    ranked = [s for s in v["results"] if s["seeds"] and not s.get("same_as")]
    best = max(ranked, key=lambda s: s["top1"], default=None)
    randoms = sum(s["kind"] == "random" for s in v["results"])
    timed = any(s.get("latency_ms") for s in v["results"])
    rows = [_row(s, base, s is best, timed, randoms) for s in v["results"]]
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
<div class="wide"><table>
<thead><tr><th>candidate</th><th>kind</th><th>log SynExp</th><th>params (search)</th>
<th>MACs (search)</th><th>params (trained)</th><th>MACs (trained)</th>{latency_th}
<th>top-1 %</th><th>vs base (points)</th><th>vs control (points)</th>{random_th}<th>val loss</th>
<th>pruned runs</th><th>img/s</th></tr></thead>
<tbody>{"".join(rows)}</tbody></table></div>
{notes}
<p class="note">Search columns: the model at the search's input size with its original
classifier; trained columns: the model as trained ({v["num_classes"]} classes,
{h}&times;{w}), counted on the real module; in brackets the ratio to the base. Top-1 and loss:
the last epoch on the validation split, mean ± std over seeds (n=1: one seed, no spread); bold:
the best mean top-1. vs base, vs control: the top-1 difference in points, paired by seed (same
initialization and data order), as mean ± half its 95% Student-t interval over the seeds,
which is the smallest difference those seeds, with the spread they showed, could detect;
<i>better</i> or <i>worse</i> only when the interval excludes zero, else <i>equal within
±X</i> (n.d., no detectable difference; the interval lies inside ±X). The spread used is at
least one validation image{image}; intervals are per comparison, not corrected for the
number of candidates. img/s: training throughput.{latency_html}
Pruner: {html.escape(PRUNERS_SAID.get(v.get("pruner") or "none", str(v.get("pruner"))))};
a pruned run is shown with the epoch it was stopped at and its top-1 then, and is left out of
the mean, the spread and the paired verdicts (completed seeds only).
{_study_note(v)}</p>
"""


def verification_html(verifications: Sequence[dict[str, Any]], folder: Path) -> str:
    """The page's verification section under its heading: every stored verification, latest
    first, and a link to ``verify.csv`` where the folder has one."""
    text = (
        "".join(_verify_html(v) for v in reversed(verifications))
        if verifications
        else "<p>No verification has run on this study (<code>widthsearch verify</code>).</p>"
    )
    if verifications and (folder / "verify.csv").is_file():
        text += '<p>Every run, seed by seed: <a href="verify.csv">verify.csv</a>.</p>'
    return text


__all__ = ["PRUNERS_SAID", "verification_html"]
