"""What a verification trains: the candidates, the base model and the controls.

Candidates come from a study's Pareto front (:func:`plan_from_study`) or from width files
(:func:`plan_from_width_files`). Every plan also holds the unchanged **base** model and a
**uniform control**: one width multiplier on every free group (timm's ``channel_multiplier``),
the largest whose MACs stay within the first candidate's, on the same rounding grid
(:func:`with_controls`; random-shape controls too, when asked). Width vectors that coincide (a
control that rounds to the base, say) are trained once.

A result is identified by the model, data, training input size and recipe (its
:func:`recipe_key`), the widths and the seed.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch.errors import InfeasibleBudgetError, VerifyError
from widthsearch.models.widthfile import load_width_file
from widthsearch.search import load_front, open_storage, widths_key
from widthsearch.search.objective import trial_problem
from widthsearch.solve.objectives import DEFAULT_OBJECTIVE
from widthsearch.solve.program import Budgets
from widthsearch.solve.solver import Problem, Solution, Strategy, solve
from widthsearch.solve.synexp import log_synexp
from widthsearch.space.choices import GridSpec
from widthsearch.space.source import ModelRef
from widthsearch.space.width_space import WidthSpace
from widthsearch.train.stem import apply_stem
from widthsearch.verify.settings import MATCHES

if TYPE_CHECKING:
    import optuna

    from widthsearch.train.loop import Recipe


@dataclass(frozen=True)
class Candidate:
    """A width vector to train, with its costs at the search's input size."""

    label: str
    kind: str
    """candidate, base or control."""
    widths: tuple[int, ...]
    params: int
    macs: int
    log_synexp: float
    """Gain over the base model."""
    trial: int | None = None

    @property
    def key(self) -> str:
        return widths_key(self.widths)


@dataclass(frozen=True)
class Plan:
    """What to train: candidates, base and control of one model's width space."""

    space: WidthSpace
    candidates: tuple[Candidate, ...]
    pick: str
    """How the candidates were chosen, in words."""
    study: optuna.Study | None = None
    problem: Problem = Problem(Budgets())
    """What the candidates solved (mode, bounds, divisor, width grid and ties, objective);
    the controls are drawn on it too (:func:`with_controls`)."""
    storage_url: str | None = None
    """The study's storage, which workers open for themselves."""

    @property
    def divisor(self) -> int:
        """The rounding grid's divisor of the candidates and controls."""
        return self.problem.divisor

    @property
    def grid(self) -> GridSpec:
        """The width grid and ties the candidates were picked on (empty: the divisor grid)."""
        return self.problem.grid


def make_candidate(
    space: WidthSpace,
    label: str,
    kind: str,
    widths: Sequence[int],
    trial: int | None = None,
) -> Candidate:
    widths = tuple(int(w) for w in widths)
    gain = log_synexp(space, widths) - log_synexp(space, space.base_widths)
    return Candidate(label, kind, widths, space.params(widths), space.macs(widths), gain, trial)


def with_controls(
    space: WidthSpace,
    picked: Sequence[Candidate],
    problem: Problem | int,
    pick: str,
    *,
    setting: WidthSpace | None = None,
    random: int = 0,
    match: str = "macs",
    grid: GridSpec | None = None,
) -> Plan:
    """``picked`` plus the base model, the uniform control (the largest single width
    multiplier whose MACs stay within the first candidate's) and ``random`` random-shape
    controls at those MACs, all counted in ``setting``. ``match="params"`` matches the controls
    to the candidate's params instead: the fair comparison for a params budget, where the
    candidate may spend more MACs than a control of equal MACs would let it.

    The controls are the one solve's ``uniform`` and ``random`` strategies
    (:func:`widthsearch.solve.solver.solve`) on the candidates' ``problem`` (mode, bounds,
    divisor, width grid and ties: a grid's controls stay on the grid, a PreCrop candidate's do
    not grow) with the candidate's cost as the only budget, so ``reconfig``'s uniform baseline,
    ``verify FILE`` and ``verify STUDY`` draw the same control for the same candidate.

    A random shape draws each free group's (or tied set's) multiplier log-uniformly between
    the smallest and the largest multiplier of the first candidate (:func:`shape_range`, so it
    is as uneven as the candidate), then scales the whole vector to the candidate's cost;
    whether the candidate beats these says whether the objective picks better than chance.

    ``setting`` is the width space as the models are trained (training input size, the data
    set's classes); squeeze-excite convs and the classifier do not shrink with the input, so a
    control matched at the search's input size may cost another ratio there. Default: ``space``.

    ``problem`` may also be a divisor alone (and ``grid`` the grid), as this function took
    before the one solve: the candidates' problem is then unknown, and the controls range over
    :data:`CONTROL_BOUNDS` in PreConfig.

    Raises:
        VerifyError: no candidates, an unknown ``match``, or a ``setting`` with other groups.
    """
    if isinstance(problem, int):
        lo, hi = CONTROL_BOUNDS
        problem = Problem(Budgets(), min_width=lo, max_width=hi, divisor=problem)
        problem = replace(problem, grid=grid or GridSpec())
    if not picked:
        raise VerifyError("no candidates to verify")
    if match not in MATCHES:
        raise VerifyError(f"controls match macs or params, not {match!r}")
    setting = setting or space
    if len(setting.groups) != len(space.groups):
        raise VerifyError(f"{space.model} has other channel groups at the training setting")

    def move(widths: Sequence[int], to: WidthSpace) -> tuple[int, ...]:
        """Free widths kept, fixed ones (input channels, classes) those of ``to``."""
        return tuple(
            b if g.fixed else w for g, w, b in zip(to.groups, widths, to.base_widths, strict=True)
        )

    base = make_candidate(space, "base", "base", space.base_widths)
    first = move(picked[0].widths, setting)
    if match == "params":
        budget = Budgets(params=setting.params(first))
    else:
        budget = Budgets(macs=setting.macs(first))
    control = replace(problem, budgets=budget, top=1)
    items = [*picked, base]
    uniform = control_widths(setting, control, "uniform")
    if uniform is not None:
        items.append(
            make_candidate(
                space, _uniform_label(uniform.method), "control", move(uniform.widths, space)
            )
        )
    shape = shape_range(space, picked[0].widths)
    for i in range(random):
        found = control_widths(setting, control, "random", seed=i, shape=shape)
        if found is not None:
            items.append(make_candidate(space, f"random {i}", "random", move(found.widths, space)))
    return Plan(space, tuple(items), pick, problem=problem)


def _uniform_label(method: str) -> str:
    """``uniform 0.750x`` for a uniform multiplier; ``near-uniform 0.750x`` for the grid point
    nearest one (absolute grids, ties of different bases)."""
    if method.startswith("grid point nearest uniform"):
        return f"near-uniform {method.split()[4]}"
    return f"uniform {method.rsplit(' ', 1)[-1]}"


CONTROL_BOUNDS = (0.05, 4.0)
"""The multiplier range of controls for candidates whose problem is unknown."""


def control_widths(
    space: WidthSpace,
    problem: Problem,
    strategy: Strategy,
    *,
    seed: int = 0,
    shape: tuple[float, float] | None = None,
) -> Solution | None:
    """A control of ``problem`` by the one solve's ``strategy`` (None when none fits)."""
    try:
        return solve(space, problem, strategy=strategy, seed=seed, shape_range=shape)
    except InfeasibleBudgetError:
        return None


def shape_range(space: WidthSpace, widths: Sequence[int]) -> tuple[float, float]:
    """The smallest and largest multiplier of ``widths`` over the free groups, widened to hold
    1 and to span at least 4x (downwards), so that a random shape in this range is uneven; a
    PreCrop candidate (no multiplier above 1) gives random shapes that do not widen either."""
    ratios = [w / g.width for g, w in zip(space.groups, widths, strict=True) if not g.fixed]
    hi = max([1.0, *ratios])
    return min([1.0, hi / 4, *ratios]), hi


def training_setting(
    space: WidthSpace, input_size: Sequence[int], num_classes: int, stem: str = "timm"
) -> WidthSpace:
    """The width space of ``space``'s model as verification trains it: at the training input
    size, with the data set's classes (``num_classes``, for timm or your factory) and the
    recipe's stem policy."""
    return trained_space(space.model, space.timm_kwargs, input_size, num_classes, stem)


def trained_space(
    model: str,
    kwargs: Mapping[str, Any],
    input_size: Sequence[int],
    num_classes: int,
    stem: str = "timm",
) -> WidthSpace:
    """:func:`training_setting` of a model reference and its kwargs, before any space of it
    exists (``run`` checks what training reads before its search)."""
    kwargs = {**kwargs, "num_classes": num_classes}
    if stem == "timm":
        return WidthSpace.from_ref(model, input_size=tuple(input_size), **kwargs)
    import torch

    built = apply_stem(ModelRef.parse(model, kwargs).build(), stem, input_size)
    return WidthSpace.from_module(built, torch.zeros(1, *input_size), name=model)


def plan_from_study(
    study_name: str, storage_url: str | None, top: int = 3, *, heartbeat: int | None = None
) -> Plan:
    """The top ``top`` front trials of a stored search, with base and control.

    Picked: the front trials that cost no more than the base model (params and MACs), by
    the study's objective (log SynExp by default), highest first; when none is that cheap, the
    whole front by it. The controls are drawn on the first pick's problem: its mix's mode,
    bounds and divisor, and the study's grid and objective.

    Raises:
        VerifyError: the study has no complete trials.
        WidthSearchError: no such search study, or a storage that cannot be opened.
    """
    import optuna

    report = load_front(study_name, storage_url)  # checks the study and says what is wrong
    storage = open_storage(storage_url, heartbeat=heartbeat)
    study = optuna.load_study(study_name=study_name, storage=storage)
    kwargs = dict(study.user_attrs.get("timm_kwargs") or {})
    space = WidthSpace.from_ref(report["model"], input_size=tuple(report["input_size"]), **kwargs)
    points: list[dict[str, Any]] = report["front"]
    if not points:
        raise VerifyError(f"study '{study_name}' has no complete trials; run search first")
    cheap = [t for t in points if t["params"] <= space.params() and t["macs"] <= space.macs()]
    objective = report.get("objective", DEFAULT_OBJECTIVE)
    pool = sorted(cheap or points, key=lambda t: -_value(t))[:top]
    what = "log SynExp" if objective == DEFAULT_OBJECTIVE else f"{objective} objective"
    pick = (
        f"the {len(pool)} front trial(s) with the highest {what}"
        + (" among those within the base model's params and MACs" if cheap else "")
        + f" (front: {len(points)} of {report['trials']} trials)"
    )
    picked = [
        make_candidate(space, f"trial {t['number']}", "candidate", t["widths"], t["number"])
        for t in pool
    ]
    problem = trial_problem(study.user_attrs, pool[0]["mix"])
    plan = with_controls(space, picked, problem, pick)
    return replace(plan, study=study, storage_url=storage_url)


def _value(t: dict[str, Any]) -> float:
    value = t.get("value")
    return t["log_synexp"] if value is None else value


def plan_from_width_files(paths: Sequence[str | os.PathLike]) -> Plan:
    """Each width file a candidate (all for one model and input size), with base and control.

    Raises:
        VerifyError: width files of other models or input sizes.
        WidthFileError: a file that is not a width file.
    """
    files = [load_width_file(p) for p in paths]
    first = files[0]
    for p, wf in zip(paths, files, strict=True):
        if (wf.model, wf.input_size) != (first.model, first.input_size):
            raise VerifyError(
                f"{p} is for {wf.model} at {list(wf.input_size)}, {paths[0]} for {first.model} "
                f"at {list(first.input_size)}: verify one model at a time"
            )
    space = first.space()
    picked = [
        make_candidate(space, Path(p).stem, "candidate", wf.widths)
        for p, wf in zip(paths, files, strict=True)
    ]
    return with_controls(space, picked, first.problem(), "the given width files")


def recipe_key(model: str, data_spec: str, input_size: Sequence[int], recipe: Recipe) -> str:
    """Identifies a verification setting: results under one key are comparable."""
    text = json.dumps([model, data_spec, list(input_size), recipe.key()], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


__all__ = [
    "CONTROL_BOUNDS",
    "Candidate",
    "Plan",
    "control_widths",
    "make_candidate",
    "plan_from_study",
    "plan_from_width_files",
    "recipe_key",
    "shape_range",
    "trained_space",
    "training_setting",
    "with_controls",
]
