"""Train: the recipe and loop that verification runs, with its data, augmentation, head and
stem policies.
"""

from widthsearch.train.data import (
    KINDS,
    DataError,
    Dataset,
    Split,
    batch_order,
    load_dataset,
    normalize_batch,
)
from widthsearch.train.loop import (
    Recipe,
    TrainResult,
    evaluate,
    on_device,
    resolve_device,
    step_seconds,
    train,
    training_subset,
)

__all__ = [
    "DataError",
    "Dataset",
    "KINDS",
    "Recipe",
    "Split",
    "TrainResult",
    "batch_order",
    "evaluate",
    "load_dataset",
    "on_device",
    "normalize_batch",
    "resolve_device",
    "step_seconds",
    "train",
    "training_subset",
]
