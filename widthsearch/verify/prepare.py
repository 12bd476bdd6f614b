"""What :func:`widthsearch.verify.run.run_verify` settles before it opens the queue.

The input is checked before anything is written (:func:`prepare` raises then); the controls
are matched to the first candidate as the models are trained (the training input size and the
data set's classes, :func:`widthsearch.verify.plan.with_controls`); the head policy ``auto``
is decided from the base model; the recipe key names the setting; and the runs are laid out
in queue order (:func:`widthsearch.verify.queue.run_order`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch.errors import VerifyError
from widthsearch.hardware.bench import MIN_RUNS as LATENCY_MIN_RUNS
from widthsearch.train.head import resolve_policy
from widthsearch.train.loop import resolve_device
from widthsearch.train.output import check_outputs
from widthsearch.train.stem import apply_stem
from widthsearch.verify.latency import model_builder
from widthsearch.verify.plan import (
    Candidate,
    Plan,
    recipe_key,
    trained_space,
    training_setting,
    with_controls,
)
from widthsearch.verify.queue import Run, run_order, verification_name
from widthsearch.verify.results import numeric_row, read_results_csv, study_rows
from widthsearch.verify.settings import Execution, VerifySettings
from widthsearch.verify.workers import assign_devices

if TYPE_CHECKING:
    import torch

    from widthsearch.space.width_space import WidthSpace
    from widthsearch.train.data import Dataset
    from widthsearch.train.loop import Recipe


@dataclass(frozen=True)
class Setup:
    """What :func:`widthsearch.verify.run.run_verify` settles before it opens the queue: the
    input checked, the controls matched as trained, the head policy decided, and the runs in
    queue order."""

    plan: Plan
    device: torch.device
    size: tuple[int, int, int]
    seeds: tuple[int, ...]
    worker_devices: list[str]
    url: str | None
    """The storage workers open (None: in memory)."""
    recipe: Recipe
    key: str
    out: Path | None
    checkpoints: Path
    csv_rows: list[dict[str, str]]
    """The results file's rows before this verification."""
    stored: dict[str, Any]
    """The verification's settings, as its study and the search study keep them."""
    imported: list[dict[str, Any]]
    """Finished results of this recipe key kept outside the verification study."""
    warnings: list[str]
    name: str
    """The verification study."""
    distinct: list[Candidate]
    """The plan's candidates, one per width vector."""
    first_label: dict[str, str]
    """The label of the first candidate of each width vector."""
    runs: list[Run]

    @property
    def ids(self) -> set[str]:
        return {r.id for r in self.runs}


def set_up(plan: Plan, data: Dataset, settings: VerifySettings, execution: Execution) -> Setup:
    """Check the input, match the controls as trained and lay out the runs (:class:`Setup`).

    Raises:
        VerifyError: bad input, before anything is written.
    """
    recipe = settings.recipe()
    space = plan.space
    device = execution.device
    device = resolve_device(device) if isinstance(device, str) else device
    size = tuple(settings.input_size or space.input_size)
    if len(size) != 3 or size[0] != space.input_size[0]:
        raise VerifyError(
            f"input size {list(size)} must keep the model's {space.input_size[0]} input channels"
        )
    seeds = tuple(dict.fromkeys(int(s) for s in settings.seeds))
    if not seeds:
        raise VerifyError("give at least one seed")
    latency_runs = execution.latency_runs
    if latency_runs and latency_runs < LATENCY_MIN_RUNS:
        raise VerifyError(
            f"latency runs must be 0 (no latency) or at least {LATENCY_MIN_RUNS}, "
            f"got {latency_runs}"
        )
    worker_devices = _worker_devices(plan, device, execution)
    picked = [c for c in plan.candidates if c.kind == "candidate"]
    setting = training_setting(space, size, data.num_classes, recipe.stem)
    output_note = _check_output(setting, data.num_classes, recipe.output)
    matched = with_controls(
        space,
        picked,
        plan.problem,
        plan.pick,
        setting=setting,
        random=settings.random,
        match=settings.match,
    )
    plan = replace(plan, candidates=matched.candidates)
    recipe, head_note = _resolve_head(recipe, plan, data.num_classes, size)
    key = recipe_key(space.model, data.spec, size, recipe)
    out = Path(execution.out) if execution.out is not None else None
    if execution.checkpoints:
        checkpoints = Path(execution.checkpoints)
    else:
        checkpoints = out.with_name(out.stem + ".ckpt") if out else Path(".widthsearch-verify")
    csv_rows = read_results_csv(out) if out else []
    stored = {
        "recipe_key": key,
        "model": space.model,
        "data": data.spec,
        "input_size": list(size),
        "recipe": recipe.to_dict(),
    }
    imported = [
        r
        for r in study_rows(plan.study) + [numeric_row(r) for r in csv_rows]
        if r.get("recipe_key") == key and r.get("state") in (None, "", "complete")
    ]
    owner = plan.study.study_name if plan.study is not None else space.model
    first_label: dict[str, str] = {}
    distinct = []
    for cand in plan.candidates:
        if cand.key not in first_label:
            first_label[cand.key] = cand.label
            distinct.append(cand)
    held = {c.key for c in plan.candidates if c.kind != "candidate"}
    return Setup(
        plan=plan,
        device=device,
        size=size,
        seeds=seeds,
        worker_devices=worker_devices,
        url=plan.storage_url if plan.study is not None else execution.storage_url,
        recipe=recipe,
        key=key,
        out=out,
        checkpoints=checkpoints,
        csv_rows=csv_rows,
        stored=stored,
        imported=imported,
        warnings=recipe.notes(len(data.train))
        + [n for n in (output_note, head_note) if n is not None],
        name=verification_name(owner, key),
        distinct=distinct,
        first_label=first_label,
        runs=run_order(distinct, seeds, held),
    )


def check_training_output(
    model: str,
    kwargs: Mapping[str, Any],
    input_size: Sequence[int],
    classes: int,
    stem: str = "timm",
    output: str | None = None,
) -> str | None:
    """:func:`set_up`'s check of what training reads, for a model reference before any search
    of it (``run`` calls it first): the model is analysed as trained, at ``input_size`` with
    ``classes`` classes and the ``stem`` policy.

    Raises:
        ModelOutputError: the model's output holds no ``[batch, classes]`` tensor under the
            rule of :mod:`widthsearch.train.output` (``output``: the key asked for).
    """
    setting = trained_space(model, kwargs, input_size, classes, stem)
    return _check_output(setting, classes, output)


def _check_output(setting: WidthSpace, classes: int, output: str | None) -> str | None:
    """Refuse, before anything trains, a model whose output training cannot read
    (:func:`widthsearch.train.output.check_outputs` on the model as trained); a note saying
    what it reads when the model returns more than a tensor."""
    read = check_outputs(setting.outputs, classes, output)
    if output is None and all(_is_tensor(out) for out in setting.outputs.values()):
        return None
    return (
        f"training reads {read}; the model's other outputs (auxiliary logits, say) are left "
        "out of the loss and of validation (--output KEY picks another)"
    )


def _is_tensor(out: Any) -> bool:
    import torch

    return isinstance(out, torch.Tensor)


def _worker_devices(plan: Plan, device: torch.device, execution: Execution) -> list[str]:
    """The device of each worker (one worker: this process).

    Raises:
        VerifyError: no worker, an unknown device, or several workers and no storage to share.
    """
    devices = execution.devices
    worker_devices = assign_devices(device, len(devices) if devices else execution.workers, devices)
    workers = len(worker_devices)
    if workers < 1:
        raise VerifyError(f"workers must be at least 1, got {workers}")
    if workers > 1 and plan.study is None and execution.storage_url is None:
        raise VerifyError(
            "several workers share a verification through a storage: give --storage "
            "FILE.db or journal:FILE.log (one machine) or a PostgreSQL URL (many machines)"
        )
    return worker_devices


def _resolve_head(
    recipe: Recipe, plan: Plan, num_classes: int, size: tuple[int, ...]
) -> tuple[Recipe, str | None]:
    """``recipe`` with its head policy decided (``auto``: from the base model as trained, built
    with seed 0, the global RNG left as it was), and the note that says so when ``auto``
    zeroes the head."""
    if recipe.head != "auto":
        return recipe, None
    import torch

    base = next(c for c in plan.candidates if c.kind == "base")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        built = model_builder(plan.space, base.widths, num_classes)()
        model = apply_stem(built, recipe.stem, size)
        head, note = resolve_policy("auto", model, size, recipe.output)
    return replace(recipe, head=head), note


__all__ = ["Setup", "check_training_output", "set_up"]
