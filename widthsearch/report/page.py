"""A study as a report: one HTML page with the front, the width profiles and the verification.

:func:`write_report` reads everything from the study (its trials, its settings, the
verification summaries ``verify`` stored) and writes ``index.html``, ``pareto.png``,
``widths.png``, ``front.csv`` and ``front.md``. Nothing in the files depends on the time they
were made, so the same study gives the same files.

The page is assembled here; its figures are drawn in :mod:`widthsearch.report.figures`, the
front table in :mod:`widthsearch.report.front`, the verification section in
:mod:`widthsearch.report.verification` and the commands that rebuild it in
:mod:`widthsearch.report.reproduce`.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch._io import write_atomic
from widthsearch._version import __version__
from widthsearch.report.figures import pareto_figure, profiles, widths_figure
from widthsearch.report.front import FRONT_ROWS_SHOWN, front_html, front_table, markdown
from widthsearch.report.reproduce import reproduce_html
from widthsearch.report.scale import ReportScale, check_replace
from widthsearch.report.truth import TruthTable, annotate_front
from widthsearch.report.verification import verification_html
from widthsearch.search import load_front, open_storage, stored_latency, trial_summary
from widthsearch.solve.costs import COST_KINDS
from widthsearch.verify import quick_check, stored_verifications

if TYPE_CHECKING:
    from collections.abc import Sequence

    import optuna
    import pandas as pd

FILES = ("index.html", "pareto.png", "widths.png", "front.csv", "front.md")


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


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1180px;
       margin: 2em auto; padding: 0 1.2em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; overflow-wrap: anywhere; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.sub { color: #555; margin-top: 0; }
.scale { background: #fff8e1; border-left: 4px solid #f0b400; padding: 0.6em 0.9em; }
table { border-collapse: collapse; font-size: 0.82em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.35em; text-align: right; }
td { white-space: nowrap; } td.v, td:first-child { white-space: normal; min-width: 5.5em; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
tr.base td { background: #f2f2f2; } tr.control td { background: #eef7ee; }
tr.random td { background: #f7f7fb; }
.better { color: #1a7f37; font-weight: 600; } .worse { color: #c62828; font-weight: 600; }
.same { color: #555; } .num { white-space: nowrap; }
.verdict { background: #eef3fb; border-left: 4px solid #1f77b4; padding: 0.5em 0.9em 0.5em 2em; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace;
            font-size: 0.9em; }
pre { background: #f4f4f4; padding: 0.6em 0.9em; overflow-x: auto; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.note { color: #555; font-size: 0.9em; }
.warn { background: #fdecea; border-left: 4px solid #d62728; padding: 0.5em 0.9em; }
.wide { overflow-x: auto; }
code { background: #f4f4f4; padding: 0 0.25em; overflow-wrap: anywhere; }
dl { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 0.2em 1em; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
@media (max-width: 640px) {
  body { margin: 1em auto; padding: 0 0.7em; }
  dl { grid-template-columns: minmax(0, 1fr); } dd { margin-bottom: 0.4em; }
}
"""


def _settings_html(report: dict[str, Any], attrs: dict[str, Any]) -> str:
    """The search settings as a definition list: model, base, trials, sampler, ranges."""
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
        *(
            (f"{kind.label} budget", times_base(rng(kind.name)))
            for kind in COST_KINDS.values()
            if kind.build is None or ranges.get(kind.name) or report.get(kind.base_key)
        ),
        *(
            [("latency model", html.escape(report.get("latency_model") or ""))]
            if report.get("base_latency_ms")
            else []
        ),
        ("min width", f"{rng('min_width')} &times; base"),
        ("max width", max_width),
        ("divisor, mode", f"{rng('divisor')}; {rng('mode')}"),
    ]
    return "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in items) + "</dl>"


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


def _trials(study: optuna.Study, report: dict[str, Any]) -> list[dict[str, Any]]:
    """Every finished trial with widths, duplicates left out, summarized against the base."""
    import optuna

    base = {kind.key: report.get(kind.base_key) for kind in COST_KINDS.values()}
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [
        trial_summary(t, base)
        for t in complete
        if t.values is not None and "widths" in t.user_attrs and "duplicate_of" not in t.user_attrs
    ]


def _page(
    study_name: str,
    storage_url: str | None,
    out: Path,
    study_file: str | os.PathLike[str] | None,
    *,
    report: dict[str, Any],
    attrs: dict[str, Any],
    table: pd.DataFrame,
    verifications: Sequence[dict[str, Any]],
) -> str:
    """``index.html``: the scale and verdicts, the settings, the figures, the verification,
    the front and how to reproduce it all."""
    import optuna

    main = verifications[-1] if verifications else None
    c, h, w = report["input_size"]
    objectives_extra = ", min predicted latency" if report.get("base_latency_ms") else ""

    try:
        import timm

        timm_version = timm.__version__
    except ImportError:  # pragma: no cover - timm is a dependency
        timm_version = "?"
    return f"""<!doctype html>
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
<a href="pareto.png"><img src="pareto.png"
alt="log SynExp against MACs and params; verified accuracy"></a>
<p class="note">Each point is one trial's rounded widths (duplicates removed). Blue: the
Pareto front in (max log SynExp, min params, min MACs{objectives_extra}), so a front point can
look dominated in one 2-D projection. Star: the base model (log SynExp gain 0 at 1&times; cost).</p>

<h2>Verification by training</h2>
{verification_html(verifications, out)}

<h2>Width profiles</h2>
<div class="wide"><a href="widths.png"><img src="widths.png"
alt="channels per group: base against chosen configurations"></a></div>
<p class="note">Grey bars: base widths of the free channel groups; lines: the configurations
{"verified above" if main else "with the highest log SynExp on the front"}.</p>

<h2>Front</h2>
{front_html(report, table)}

<h2>Reproduce</h2>
{reproduce_html(study_name, storage_url, out, report, attrs, verifications, study_file)}
<p class="note">widthsearch {__version__}, timm {timm_version}, optuna {optuna.__version__}.</p>
</body></html>
"""


def write_report(
    study_name: str,
    storage_url: str | None,
    folder: str | os.PathLike[str],
    *,
    study_file: str | os.PathLike[str] | None = None,
    replace: bool = False,
    truth: TruthTable | None = None,
) -> ReportResult:
    """Write the report of a stored study into ``folder`` (created if needed).

    The same study gives the same files: nothing in them depends on when they were made.

    Args:
        study_name: the search study (``search --study``; default there: the model name).
        storage_url: its storage (None: ``sqlite:///widthsearch.db``).
        folder: where ``index.html``, ``pareto.png``, ``widths.png``, ``front.csv`` and
            ``front.md`` go.
        study_file: the study file the study was run from, named in the page's commands.
        replace: write over a report of a larger scale (the page records its scale,
            :class:`~widthsearch.report.scale.ReportScale`: fewer trials, epochs or seeds, no
            verification, or a quick check where the folder has a full run is smaller).
        truth: a ground-truth table (:func:`widthsearch.report.truth.load_truth`): each front
            trial's table accuracy is added to the front's tables.

    Returns:
        The folder, the files written, the front's size and how many verifications are shown.

    Raises:
        StorageError: the storage cannot be opened or holds no such study; nothing is written.
        ReportScaleError: ``folder`` holds a report of a larger scale, nothing written.
    """
    import optuna

    report = load_front(study_name, storage_url, rows=FRONT_ROWS_SHOWN)
    if truth is not None:
        report = annotate_front(report, truth)
    study = optuna.load_study(study_name=study_name, storage=open_storage(storage_url))
    attrs = study.user_attrs
    trials = _trials(study, report)
    verifications = stored_verifications(study)
    main = verifications[-1] if verifications else None
    out = Path(folder)
    scale = ReportScale.of(report["trials"], main)
    check_replace(out, scale, replace=replace)
    out.mkdir(parents=True, exist_ok=True)

    table = front_table(report)
    write_atomic(out / "front.csv", table.to_csv(index=False, lineterminator="\n"))
    write_atomic(out / "front.md", markdown(table))
    lat_cost = stored_latency(attrs)
    latency = None if lat_cost is None else (lambda w: float(lat_cost(w)))
    write_atomic(out / "pareto.png", pareto_figure(report, trials, main, latency))
    write_atomic(out / "widths.png", widths_figure(report, profiles(report, main)))
    page = _page(
        study_name,
        storage_url,
        out,
        study_file,
        report=report,
        attrs=attrs,
        table=table,
        verifications=verifications,
    )
    # the scale, for the next writer to compare with (see widthsearch.report.scale)
    head = '<meta charset="utf-8">' if '<meta charset="utf-8">' in page else "<head>"
    page = page.replace(head, f"{head}\n{scale.meta()}", 1)
    write_atomic(out / "index.html", page)
    return ReportResult(out, FILES, len(report["front"]), len(verifications))


__all__ = ["FILES", "ReportResult", "default_folder", "write_report"]
