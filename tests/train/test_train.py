"""The trainer on real CIFAR-10 images: learning above chance, augmentation and the stem in the
recipe, and resumption that reproduces an uninterrupted run with augmentation on."""

from __future__ import annotations

import pytest
import timm
import torch

from tests.conftest import cifar10_archive
from widthsearch.train.augment import resolve_policy
from widthsearch.train.data import load_dataset
from widthsearch.train.loop import Recipe, train

SIZE = (3, 32, 32)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def cifar10():
    return load_dataset(f"cifar10:{cifar10_archive()}")


def _small_resnet():
    return timm.create_model("resnet18", num_classes=10, channels=(16, 32, 64, 128))


@pytest.mark.slow
def test_a_small_cifar10_subset_trains_above_chance_with_augmentation(cifar10):
    recipe = Recipe(
        epochs=3, batch_size=64, lr=3e-3, augment="light", train_subset=2000, warmup_epochs=0.5
    )
    result = train(_small_resnet, cifar10, SIZE, recipe, 0, CPU)
    assert result.steps == 3 * (2000 // 64)
    # 5,000 held-out images: chance is 10% with a spread of 0.4 points
    assert result.top1 > 0.2, result.history
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]


def test_augmentation_and_stem_are_part_of_the_recipe():
    plain = Recipe()
    assert "augment" not in plain.to_dict() and "stem" not in plain.to_dict()  # keys as before
    light = Recipe(augment=resolve_policy("auto", "cifar10:/data"), stem="cifar")
    assert light.to_dict()["augment"] == "light" and light.to_dict()["stem"] == "cifar"
    assert resolve_policy("auto", "digits") == "crop"  # a mirrored digit is another glyph
    with pytest.raises(Exception, match="stem policy"):
        Recipe(stem="wide")


@pytest.mark.slow
def test_a_resumed_run_with_augmentation_ends_where_an_uninterrupted_one_does(tmp_path, cifar10):
    recipe = Recipe(epochs=2, batch_size=32, augment="light", train_subset=128)

    def build():
        return timm.create_model("resnet18", num_classes=10, channels=(8, 8, 16, 16))

    whole = train(build, cifar10, SIZE, recipe, 1, CPU)

    class Interrupt(Exception):
        pass

    def stop(epoch, step, steps, loss):
        if epoch == 1 and step == 3:
            raise Interrupt

    ckpt = tmp_path / "run.pt"
    with pytest.raises(Interrupt):
        train(build, cifar10, SIZE, recipe, 1, CPU, checkpoint=ckpt, on_step=stop)
    resumed = train(build, cifar10, SIZE, recipe, 1, CPU, checkpoint=ckpt)
    assert resumed.resumed_from == 1
    assert (resumed.top1, resumed.loss) == (whole.top1, whole.loss)
    no_aug = train(build, cifar10, SIZE, Recipe(**{**recipe.to_dict(), "augment": "none"}), 1, CPU)
    assert no_aug.history[0]["train_loss"] != whole.history[0]["train_loss"]
