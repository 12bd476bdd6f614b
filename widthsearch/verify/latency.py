"""The models as trained: how verification builds them, counts them and times them.

Equal MACs are not equal time (a layer's shape decides how well it runs), so ``verify`` puts
the measured latency of every model it compares next to its MACs: each distinct width vector
built as trained and timed at batch 1 in one interleaved run (:func:`measure_trained_latency`),
kept in the verification study (:data:`widthsearch.verify.attrs.LATENCY`) and reused by a
later ``verify`` unless those timings were noisy (:data:`NOISY_SPREAD`) or taken on a busy
machine (:data:`BUSY_CORES`), which :func:`latency_notes` says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from widthsearch.hardware.bench import measure_latency
from widthsearch.hardware.timing import current_device
from widthsearch.models.native import build_spec
from widthsearch.train.stem import apply_stem
from widthsearch.verify.attrs import LATENCY, LATENCY_DEVICE, LATENCY_LOAD, LATENCY_MS
from widthsearch.verify.settings import LATENCY_RUNS

if TYPE_CHECKING:
    import optuna
    from torch import nn

    from widthsearch.hardware.timing import Device
    from widthsearch.space.width_space import WidthSpace
    from widthsearch.verify.plan import Candidate

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
    (``info``: what :meth:`widthsearch.verify.summary.VerifyReport.to_dict` returns)."""
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


def count_trained_model(model: nn.Module, input_size: Sequence[int]) -> tuple[int, int]:
    """(params, MACs) of the model as trained: numel, and FlopCounterMode / 2 for one image."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, *input_size))
    return sum(p.numel() for p in model.parameters()), counter.get_total_flops() // 2


def model_builder(
    space: WidthSpace, widths: Sequence[int], num_classes: int
) -> Callable[[], nn.Module]:
    """What verification builds for ``widths``: the model with ``num_classes`` classes, native
    where timm can build it (:func:`widthsearch.space._portable.build`), before any stem policy."""
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
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    return current_device(kind, threads=1 if kind == "cpu" else None, batch_size=1)


def stored_run_latency(
    runs: optuna.Study, rows: Sequence[dict[str, Any]], key: str, timed_on: str, wanted: set[str]
) -> tuple[dict[str, tuple[float, float]], float | None] | None:
    """Latencies timed on ``timed_on`` for every width vector in ``wanted``, and the load they
    were timed under, from the verification study ``runs`` or, where it keeps none for that
    device (older versions), from the results CSV's ``rows`` (recipe ``key``): one earlier
    interleaved run, so their ratios hold. None when the source lacks any of them, or they were
    noisy (:data:`NOISY_SPREAD`) or timed on a busy machine (:data:`BUSY_CORES`), and all are
    timed again (a rerun changes nothing; a new model is never set against old timings)."""
    stored = runs.user_attrs.get(LATENCY) or {}
    load: float | None
    if stored.get(LATENCY_DEVICE) == timed_on:
        found = {k: (float(ms), float(spread)) for k, (ms, spread) in stored[LATENCY_MS].items()}
        load = stored.get(LATENCY_LOAD)
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


def store_latency(
    runs: optuna.Study,
    measured: dict[str, tuple[float, float]],
    timed_on: str,
    load: float | None,
) -> None:
    """Keep timings just taken in the verification study ``runs``, for the next ``verify``."""
    timings = {
        LATENCY_DEVICE: timed_on,
        LATENCY_MS: {k: list(v) for k, v in measured.items()},
        LATENCY_LOAD: load,
    }
    runs.set_user_attr(LATENCY, timings)


__all__ = [
    "BUSY_CORES",
    "NOISY_SPREAD",
    "count_trained_model",
    "latency_device",
    "latency_notes",
    "measure_trained_latency",
    "model_builder",
]
