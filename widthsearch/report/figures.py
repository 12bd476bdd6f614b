"""The report's figures: ``pareto.png`` (the search's trials and front, the verified top-1) and
``widths.png`` (width per channel group, base against the chosen configurations).

Both are drawn with matplotlib's Agg backend and saved without the software stamp, so the same
study gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from widthsearch.search import widths_key

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PROFILES = 3
"""Width profiles drawn when nothing was verified: the front's best by log SynExp."""

Latency = Callable[[Sequence[int]], float]
"""The study's latency model: predicted milliseconds of a width vector."""


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    return buf.getvalue()


def _cost_panel(
    ax: Axes,
    key: str,
    label: str,
    report: dict[str, Any],
    trials: Sequence[dict[str, Any]],
    verified: set[str],
) -> None:
    """log SynExp against one cost ratio (``key``): the other trials, the front, the verified
    front trials and the base."""
    front_keys = {widths_key(t["widths"]) for t in report["front"]}
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


def pareto_figure(
    report: dict[str, Any],
    trials: Sequence[dict[str, Any]],
    verification: dict[str, Any] | None,
    latency: Latency | None = None,
) -> bytes:
    """log SynExp against MACs, params and (where the study predicts it) latency; verified
    top-1 against MACs and predicted latency. ``latency(widths)``: the study's latency model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_latency = latency is not None and bool(report.get("base_latency_ms"))
    panels = 2 + has_latency + (1 + has_latency) * bool(verification)
    # two panels a row, so that a page 1,180 px wide shows the ticks near full size
    cols = min(panels, 2)
    rows = -(-panels // cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(5.6 * cols, 4.4 * rows), constrained_layout=True, squeeze=False
    )
    axes = [ax for row in grid for ax in row]
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
        _cost_panel(ax, key, label, report, trials, verified)
    axes[0].legend(loc="best", fontsize=8)
    axes[0].set_title("log SynExp against MACs")
    axes[1].set_title("log SynExp against params")
    if has_latency:
        axes[2].set_title("log SynExp against predicted latency")
    if verification:
        c, h, w = verification["input_size"]
        title = f"verified top-1: {_data_kind(verification['data'])}, {_length(verification)}"
        _, sh, sw = report["input_size"]
        base_ms = report.get("base_latency_ms")
        xs: list[tuple[Callable[[dict[str, Any]], float], str]] = [
            (lambda r: r["macs"] / 1e6, f"MACs (millions, model as trained at {h}x{w})")
        ]
        if latency is not None and base_ms:  # has_latency, spelled out for the type checker
            xs.append(
                (
                    lambda r: latency(r["widths"]) / base_ms,
                    f"predicted latency / base's (at the search's {sh}x{sw})",
                )
            )
        for ax, (x_of, xlabel) in zip(axes[2 + has_latency :], xs, strict=False):
            _verified_panel(ax, verification, x_of)
            ax.set_xlabel(xlabel)
            ax.set_title(title)
    for ax in axes[panels:]:
        ax.set_visible(False)
    data = _png(fig)
    plt.close(fig)
    return data


def _data_kind(data: str) -> str:
    """The data set's kind for a title (``cifar10``), never its path, which belongs to one
    machine and runs past the panel."""
    kind, sep, _ = str(data).partition(":")
    return kind if sep else ("digits" if kind == "digits" else "image folder")


def _length(verification: dict[str, Any]) -> str:
    """How long each run trained: epochs, or steps where a quick check capped them."""
    recipe = verification["recipe"]
    steps = recipe.get("max_steps")
    if steps is not None:
        return f"at most {steps} step{'s' * (steps != 1)} (quick check)"
    n = recipe["epochs"]
    return f"{n} epoch{'s' * (n != 1)}"


def _verified_panel(
    ax: Axes, verification: dict[str, Any], x_of: Callable[[dict[str, Any]], float]
) -> None:
    """Validation top-1 (mean ± std over seeds) of every trained model against ``x_of(run)``."""
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


def widths_figure(report: dict[str, Any], profiles: Sequence[tuple[str, Sequence[int]]]) -> bytes:
    """Channels per free channel group (log scale): the base as bars, each profile a line."""
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


def profiles(
    report: dict[str, Any], verification: dict[str, Any] | None
) -> list[tuple[str, list[int]]]:
    """The width profiles to draw: the verified candidates and controls, else the front's
    :data:`PROFILES` best by log SynExp."""
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


__all__ = ["PROFILES", "Latency", "pareto_figure", "profiles", "widths_figure"]
