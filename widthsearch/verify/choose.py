"""Training in the loop: choose among the solve's best K lattice points by short training.

An init-time objective ranks configurations of equal cost well but not perfectly; training
tells them apart better, at a cost. :func:`choose_by_training` takes the one solve's best K
lattice points under the budgets (:func:`widthsearch.solve.solver.solve` with ``top=K``, best
first by the objective), trains them next to the uniform control and the base exactly as
``verify`` trains (:func:`widthsearch.verify.run.run_verify`: the user's data and recipe on the
held-out split, the same seeds and data order for every model, workers and storage as given,
resumable), with successive halving stopping the weak ones at the rungs (``sha``: the top third
of each rung goes on, rungs at r, 3r, 9r epochs), and keeps the best trained one.

Then it **confirms** with fresh seeds: the winner against the objective's own pick (rank 1) and
the uniform control, paired seed by seed (:func:`widthsearch.verify.verdict.paired`). Where
the winner is not detectably better than the objective's pick, the route keeps the objective's
pick and says why, rather than picking noise: a short run's ranking of close configurations is
itself noisy (``docs/evidence`` has the fidelity measured on Channel-Bench-Macro).

What it returns (:class:`Choice`) records how the widths were chosen and at what cost; width
files keep it as ``chosen_by``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from widthsearch.errors import VerifyError
from widthsearch.solve.reconfigure import Reconfiguration
from widthsearch.verify.plan import Candidate, make_candidate, with_controls
from widthsearch.verify.run import run_verify
from widthsearch.verify.settings import Execution, VerifySettings
from widthsearch.verify.summary import VerifyReport
from widthsearch.verify.verdict import BETTER, paired

if TYPE_CHECKING:
    from collections.abc import Sequence

    from widthsearch.solve.problem import Solution
    from widthsearch.space.width_space import WidthSpace
    from widthsearch.train.data import Dataset
    from widthsearch.verify.progress import Log, Progress

DEFAULT_TOP = 8
"""K: the best lattice points trained (see the fidelity study in docs/evidence)."""
CONFIRM_SEEDS = (101, 102, 103)
"""Fresh seeds of the confirmation: none of the screening's (0, 1, ...)."""


@dataclass(frozen=True)
class Choice:
    """The widths training chose, how, and at what cost."""

    widths: tuple[int, ...]
    chosen: str
    """``"rank N"``: the label of the chosen point among the objective's best K."""
    kept_objective: bool
    """The objective's own pick (rank 1) was kept: training agreed with it, or could not
    tell its winner apart from it."""
    reason: str
    """Why, in one sentence with the figures."""
    k: int
    screening: list[dict[str, Any]]
    """Per point: label, widths, mean top-1 over the screening seeds, runs, epochs it reached."""
    confirmation: dict[str, Any]
    """The winner's paired verdicts against rank 1 and the uniform control, fresh seeds."""
    seconds: float
    """Training wall seconds of screening and confirmation (every run, pruned included)."""
    runs: int
    trained: int = 0
    """Runs this call trained (the rest were in the storage already: a re-run resumes)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """The screening's recipe, seeds and pruner, and the confirmation's seeds."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": "train-top",
            "k": self.k,
            "chosen": self.chosen,
            "kept_objective": self.kept_objective,
            "reason": self.reason,
            "screening": self.screening,
            "confirmation": self.confirmation,
            "train_seconds": self.seconds,
            "runs": self.runs,
            "trained": self.trained,
            "settings": self.settings,
        }


def candidates_of(space: WidthSpace, ranked: Sequence[Sequence[int]]) -> list[Candidate]:
    """The best K points as verification candidates ``rank 1`` ... ``rank K``."""
    return [
        make_candidate(space, f"rank {i}", "candidate", widths)
        for i, widths in enumerate(ranked, 1)
    ]


def choose_by_training(
    space: WidthSpace,
    solution: Solution | Reconfiguration,
    data: Dataset,
    settings: VerifySettings,
    execution: Execution | None = None,
    *,
    confirm_seeds: tuple[int, ...] = CONFIRM_SEEDS,
    progress: Progress | None = None,
    log: Log | None = None,
) -> Choice:
    """Train ``solution``'s best points (from a solve, or :func:`~widthsearch.solve.
    reconfigure`, with ``top=K``: ``solution.ranked``) and the controls, keep the best trained
    one, and confirm it with ``confirm_seeds``.

    ``settings`` is the screening: data, recipe, input size and seeds (one seed by default in
    the CLI); ``execution`` how it runs (workers, storage: a re-run skips finished runs; the
    pruner is successive halving unless one is given). The confirmation trains the winner, the
    objective's pick and the uniform control with ``confirm_seeds`` and the same recipe.

    Raises:
        VerifyError: fewer than two points to choose among, or seeds shared by screening and
            confirmation.
    """
    answer = solution.solution if isinstance(solution, Reconfiguration) else solution
    if answer is None or len(answer.ranked) < 2:
        raise VerifyError(
            "training chooses among the best points of a width grid, but only "
            f"{0 if answer is None else len(answer.ranked)} lattice point fits the budgets; "
            "loosen a budget or give the grid more choices"
        )
    if set(confirm_seeds) & set(settings.seeds):
        raise VerifyError("the confirmation needs fresh seeds, none of the screening's")
    execution = execution or Execution()
    if execution.pruner == "auto":
        execution = replace(execution, pruner="sha")
    start = time.perf_counter()
    ranked = candidates_of(space, answer.ranked)
    k = len(ranked)
    pick = f"the objective's best {k} lattice points under the budgets"
    plan = with_controls(space, ranked, answer.problem, pick)
    if log is not None:
        upper = (k + 2) * len(settings.seeds) + 3 * len(confirm_seeds)
        log(
            f"screening the best {k} lattice points: {_describe(settings)}; at most {upper} "
            "runs with the confirmation (fewer once successive halving stops weak points, and "
            "runs the storage holds are not trained again)"
        )
    screened = run_verify(plan, data, settings, execution, progress=progress, log=log)
    table = _screening(screened, ranked)
    finished = [r for r in table if r["n"] and r["top1"] is not None]
    if not finished:
        raise VerifyError("no screened point finished a run; train longer or with more images")
    winner = max(finished, key=lambda r: r["top1"])
    confirm = replace(settings, seeds=tuple(confirm_seeds))
    first = ranked[0]
    chosen = next(c for c in ranked if c.label == winner["candidate"])
    picked = [chosen] if chosen.key == first.key else [chosen, first]
    plan2 = with_controls(space, picked, answer.problem, f"{chosen.label}, confirmed")
    if log is not None:
        log(f"confirming {chosen.label} with fresh seeds {list(confirm_seeds)}")
    confirmed = run_verify(plan2, data, confirm, execution, progress=progress, log=log)
    verdicts = _confirmation(confirmed, chosen, first)
    kept, reason = _decide(chosen, first, verdicts)
    runs = screened.trained + screened.skipped + confirmed.trained + confirmed.skipped
    seconds = _wall(screened) + _wall(confirmed)
    return Choice(
        widths=first.widths if kept else chosen.widths,
        chosen=first.label if kept else chosen.label,
        kept_objective=kept,
        reason=reason,
        k=k,
        screening=table,
        confirmation=verdicts,
        seconds=seconds if seconds else time.perf_counter() - start,
        runs=runs,
        trained=screened.trained + confirmed.trained,
        settings={
            "recipe": screened.recipe.to_dict(),
            "seeds": list(settings.seeds),
            "confirm_seeds": list(confirm_seeds),
            "pruner": screened.pruner,
            "data": data.spec,
            "input_size": list(screened.input_size),
        },
    )


def _describe(settings: VerifySettings) -> str:
    recipe = settings.recipe()
    steps = f", at most {recipe.max_steps} steps" if recipe.max_steps else ""
    return f"{settings.data}, {recipe.epochs} epochs{steps}, seeds {list(settings.seeds)}"


def _screening(report: VerifyReport, ranked: list[Candidate]) -> list[dict[str, Any]]:
    """Per ranked point: its mean screening top-1, runs finished, and where pruning stopped it."""
    by_label = {s.candidate.label: s.to_dict() for s in report.summaries}
    out = []
    for c in ranked:
        s = by_label.get(c.label, {})
        n = s.get("n", 0)
        out.append(
            {
                "candidate": c.label,
                "widths": list(c.widths),
                "log_synexp": c.log_synexp,
                "top1": s.get("top1") if n else None,
                "n": n,
                "pruned": s.get("pruned", []),
                "same_as": s.get("same_as"),
            }
        )
    return out


def _by_seed(summary: dict[str, Any]) -> dict[int, float]:
    return dict(zip(summary["seeds"], summary.get("top1_seeds") or [], strict=False))


def _confirmation(report: VerifyReport, chosen: Candidate, first: Candidate) -> dict[str, Any]:
    """The confirmed winner's paired verdicts against rank 1 and the uniform control."""
    rows = {s.candidate.label: s.to_dict() for s in report.summaries}
    resolution = 1 / report.val_images if report.val_images else 0.0
    win = rows[chosen.label]
    out: dict[str, Any] = {"candidate": chosen.label, "top1": win["top1"], "n": win["n"]}
    if chosen.key != first.key:
        out["vs_objective"] = paired(
            _by_seed(win), _by_seed(rows[first.label]), name=first.label, resolution=resolution
        ).to_dict()
    control = next((r for r in rows.values() if r["kind"] == "control"), None)
    if control is not None:
        out["vs_uniform"] = paired(
            _by_seed(win), _by_seed(control), name=control["candidate"], resolution=resolution
        ).to_dict()
    return out


def _decide(chosen: Candidate, first: Candidate, verdicts: dict[str, Any]) -> tuple[bool, str]:
    """Keep the objective's pick unless the trained winner is detectably better than it."""
    if chosen.key == first.key:
        return True, "training ranked the objective's own pick first"
    v = verdicts["vs_objective"]
    text = (
        f"{v['mean'] * 100:+.2f} points over {v['n']} fresh seeds"
        if v.get("mean") is not None
        else "no shared seed"
    )
    if v["label"] == BETTER:
        return False, f"{chosen.label} beat the objective's pick, confirmed: {text}"
    return True, (
        f"{chosen.label} led the screening but was not detectably better than the objective's "
        f"pick with fresh seeds ({text}, {v['label']}); the objective's pick is kept"
    )


def _wall(report: VerifyReport) -> float:
    return float(sum(s.to_dict()["wall_seconds"] for s in report.summaries))


__all__ = ["CONFIRM_SEEDS", "DEFAULT_TOP", "Choice", "candidates_of", "choose_by_training"]
