"""What a worker needs to train any run of one verification."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from widthsearch.verify.latency import model_builder

if TYPE_CHECKING:
    from torch import nn

    from widthsearch.space.width_space import WidthSpace
    from widthsearch.train.loop import Recipe
    from widthsearch.verify.plan import Candidate


@dataclass(frozen=True)
class Job:
    """What a worker needs to train any run of one verification (picklable: spawned workers
    get it, open the storage and load the data themselves)."""

    space: WidthSpace
    data_spec: str
    num_classes: int
    input_size: tuple[int, int, int]
    recipe: Recipe
    key: str
    settings: dict[str, Any]
    study_name: str
    storage_url: str | None
    checkpoints: str
    compile: bool = False
    heartbeat: int | None = None

    def checkpoint(self, cand: Candidate, seed: int) -> Path:
        return Path(self.checkpoints) / f"{self.key}-{cand.key}-s{seed}.pt"

    def build(self, cand: Candidate) -> Callable[[], nn.Module]:
        """A builder of ``cand``'s model, as every run and the time estimate train it."""
        return model_builder(self.space, cand.widths, self.num_classes)


__all__ = ["Job"]
