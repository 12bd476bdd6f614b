"""Which runs a verification stops early: the pruners, by name.

A verification study's pruner is chosen once, when the study is made
(:func:`widthsearch.verify.queue.open_verification`), so that every worker and every later
``verify`` prunes alike. The base model and the controls are never stopped; they set the
rungs the candidates are judged at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from widthsearch.errors import QueueError

if TYPE_CHECKING:
    import optuna

PRUNERS = ("auto", "sha", "hyperband", "median", "none")
AUTO_SHA_FROM = 6
"""``auto`` prunes by successive halving from this many candidates on; with fewer it prunes
nothing (little to save, and every pruned run is a verdict lost)."""
REDUCTION = 3
"""Successive halving keeps the top third at each rung (rungs at r, 3r, 9r, ... epochs)."""


def min_resource(epochs: int) -> int:
    """The first rung of successive halving and Hyperband: ``max(1, epochs // 9)`` epochs, so a
    run of E epochs meets rungs at r, 3r and 9r <= E (10 epochs: 1, 3, 9)."""
    return max(1, epochs // REDUCTION**2)


def resolve_pruner(name: str, candidates: int) -> str:
    """``auto`` resolved for ``candidates`` candidates (see :data:`AUTO_SHA_FROM`).

    Raises:
        QueueError: an unknown pruner.
    """
    if name not in PRUNERS:
        raise QueueError(f"unknown pruner '{name}'; use {', '.join(PRUNERS)}")
    if name != "auto":
        return name
    return "sha" if candidates >= AUTO_SHA_FROM else "none"


def make_pruner(name: str, epochs: int) -> optuna.pruners.BasePruner:
    """The Optuna pruner ``name`` for runs of ``epochs`` epochs (reported at steps 1..epochs).

    - ``sha``: asynchronous successive halving (``SuccessiveHalvingPruner``): at each rung a
      run goes on only if its top-1 is among the best third of the runs that reached that
      rung so far (base and control included); the first runs at a rung always go on.
    - ``hyperband``: several successive-halving brackets with other first rungs; trials are
      spread over brackets by a hash of their number, so with tens of runs each bracket
      compares few: prefer ``sha`` below a few hundred runs.
    - ``median``: stop a run below the median of the earlier runs at the same epoch, from
      the first rung on, once two runs (base and control) have finished.
    - ``none``: every run trains to its end.

    Raises:
        QueueError: an unknown pruner (``auto`` is resolved first, :func:`resolve_pruner`).
    """
    import optuna

    r = min_resource(epochs)
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=r, reduction_factor=REDUCTION, min_early_stopping_rate=0
        )
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=r, max_resource=epochs, reduction_factor=REDUCTION
        )
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=r)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise QueueError(f"unknown pruner '{name}'; use {', '.join(PRUNERS[1:])}")


__all__ = ["AUTO_SHA_FROM", "PRUNERS", "REDUCTION", "make_pruner", "min_resource", "resolve_pruner"]
