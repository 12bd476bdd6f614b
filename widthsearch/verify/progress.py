"""How a verification tells the user it is moving: message lines and per-run progress hooks.

:func:`widthsearch.verify.run.run_verify` takes both as callbacks: ``log`` gets one-line
messages (warnings, the time estimate, one line per finished run), ``progress`` makes the
hooks of each run (a progress bar on a terminal, :func:`epoch_lines` elsewhere).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from widthsearch.verify.plan import Candidate

StepHook = Callable[[int, int, int, float], None]
"""``on_step(epoch, step, steps, loss)``, as :func:`widthsearch.train.train` calls it."""
EpochHook = Callable[[dict[str, float]], None]
"""``on_epoch(record)``: the epoch's record (``epoch``, ``val_top1``, ``val_loss``, ...)."""
Progress = Callable[["Candidate", int], Any]
"""Called before a candidate/seed trains; returns (on_step, on_epoch, close) hooks or None."""
Log = Callable[[str], None]
"""Takes a one-line message for the user (warnings, the time estimate)."""


def epoch_lines(say: Log, epochs: int) -> Progress:
    """Progress as one line per finished epoch, where a progress bar cannot draw: a log file,
    or spawned workers sharing one terminal. An epoch of a long run takes minutes, and the line
    that ends the run may be hours away; these say the work is moving and how fast."""

    def hooks(cand: Candidate, seed: int) -> tuple[None, EpochHook, None]:
        def on_epoch(record: dict[str, float]) -> None:
            say(
                f"{cand.label} seed {seed}: epoch {int(record['epoch'])}/{epochs}, "
                f"val top-1 {100 * record['val_top1']:.1f}%, loss {record['val_loss']:.3f}, "
                f"{record['seconds']:.0f} s"
            )

        return None, on_epoch, None

    return hooks


__all__ = ["EpochHook", "Log", "Progress", "StepHook", "epoch_lines"]
