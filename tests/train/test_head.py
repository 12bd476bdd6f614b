"""Head policies on real timm models and real digits: where timm's classifier init starts a
10-class model, what ``--head zero`` changes, and that the policy is part of the recipe."""

from __future__ import annotations

import csv
import json
import math

import pytest
import timm
import torch

from widthsearch.cli import main
from widthsearch.studyfile import StudyConfigError, VerifySettings, load_config
from widthsearch.train.data import load_dataset, normalize_batch
from widthsearch.train.head import (
    FAR_FROM_CHANCE,
    HeadError,
    apply_head,
    logit_layers,
    resolve_policy,
)
from widthsearch.train.loop import Recipe, train

SIZE = (3, 32, 32)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _loss(model, digits) -> tuple[float, torch.Tensor]:
    x = normalize_batch(digits.val.images[:256], digits, SIZE, CPU)
    with torch.no_grad():
        logits = model(x)
    return torch.nn.functional.cross_entropy(logits, digits.val.labels[:256]).item(), logits


@pytest.mark.parametrize(
    "name, layers",
    [
        ("mobilenetv2_100", 1),
        ("efficientnet_b0", 1),
        ("resnet18", 1),
        ("repvit_m0_9", 2),  # a classifier and a distillation classifier, averaged
        ("convformer_s18", 1),  # an MLP head: only its last layer gives logits
    ],
)
def test_zero_head_starts_every_family_at_the_uniform_prediction(name, layers, digits):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=10)
    assert len(logit_layers(model)) == layers
    loss, logits = _loss(apply_head(model, "zero"), digits)
    assert bool((logits == 0).all())
    assert loss == pytest.approx(math.log(10), abs=1e-6)


def test_timm_head_starts_efficientnet_families_far_from_chance_and_resnets_near_it(digits):
    """The reason for the policy: timm's TensorFlow-style init sizes the classifier for 1,000
    classes (range 1/sqrt(classes)), so with 10 the logits start large; ResNets keep PyTorch's
    init, sized by the classifier's inputs."""
    torch.manual_seed(0)
    assert _loss(timm.create_model("mobilenetv2_100", num_classes=10), digits)[0] > 4.0
    torch.manual_seed(0)
    assert _loss(timm.create_model("resnet18", num_classes=10), digits)[0] < 2.6
    torch.manual_seed(0)
    unchanged = timm.create_model("mobilenetv2_100", num_classes=10)
    torch.manual_seed(0)
    same = apply_head(timm.create_model("mobilenetv2_100", num_classes=10), "timm")
    assert all(
        torch.equal(a, b)
        for a, b in zip(unchanged.state_dict().values(), same.state_dict().values(), strict=True)
    )


@pytest.mark.slow
def test_zero_head_lets_a_short_run_learn_where_timms_head_does_not(digits):
    def build():
        return timm.create_model("mobilenetv2_100", num_classes=10)

    runs = {
        head: train(
            build, digits, SIZE, Recipe(epochs=2, batch_size=64, augment="crop", head=head), 0, CPU
        )
        for head in ("timm", "zero")
    }
    # the first epoch starts at chance loss, not at 3x it
    assert runs["zero"].history[0]["train_loss"] < 2.4 < 5.0 < runs["timm"].history[0]["train_loss"]
    assert runs["zero"].loss < runs["timm"].loss
    assert runs["zero"].top1 > runs["timm"].top1 + 0.05


@pytest.mark.parametrize(
    "name, classes, size, decided",
    [
        ("resnet18", 10, SIZE, "timm"),
        ("mobilenetv2_100", 10, SIZE, "zero"),
        ("efficientnet_b0", 10, SIZE, "zero"),
        ("mobilenetv2_100", 1000, (3, 224, 224), "timm"),  # the init timm sized it for
    ],
)
def test_auto_zeroes_the_head_only_where_the_base_starts_far_from_chance(
    name, classes, size, decided, digits
):
    torch.manual_seed(0)
    model = timm.create_model(name, num_classes=classes)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head, note = resolve_policy("auto", model, size)
    assert head == decided
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    if decided == "zero":
        ratio = float(note.split("x chance")[0].split()[-1])
        assert ratio > FAR_FROM_CHANCE and "--head timm" in note and "\n" not in note
        if classes == 10:  # the noise the rule uses and real images agree on where it starts
            assert _loss(model, digits)[0] > FAR_FROM_CHANCE * math.log(10)
    else:
        assert note is None
    assert resolve_policy("zero", model, size) == ("zero", None)
    with pytest.raises(HeadError, match="resolve_policy"):
        apply_head(model, "auto")


def test_head_is_part_of_the_recipe_and_keys_stored_before_it_hold():
    assert "head" not in Recipe().to_dict()  # timm, what every stored result trained with
    assert Recipe(head="zero").to_dict()["head"] == "zero"
    assert Recipe(head="zero").key() != Recipe().key()
    with pytest.raises(HeadError, match="head policy"):
        Recipe(head="small")
    assert VerifySettings().recipe().head == "auto"  # `run` and `verify` decide it per model


def test_a_model_without_a_logit_layer_is_refused_in_one_line():
    with pytest.raises(HeadError, match="use --head timm") as err:
        apply_head(timm.create_model("resnet18", num_classes=0), "zero")
    assert "\n" not in str(err.value)
    headless = timm.create_model("resnet18", num_classes=0)
    assert apply_head(headless, "timm") is headless  # nothing to change
    assert resolve_policy("auto", headless, SIZE) == ("timm", None)


def test_a_bad_head_is_one_line_and_exit_2(tmp_path, capsys):
    study = tmp_path / "s.toml"
    study.write_text('model = "resnet18"\n[verify]\nhead = "small"\n')
    with pytest.raises(StudyConfigError, match="verify.head must be one of auto, zero, timm"):
        load_config(study)
    with pytest.raises(SystemExit) as exit_:
        main(["verify", "x.json", "--head", "small"])
    assert exit_.value.code == 2
    assert "invalid choice: 'small'" in capsys.readouterr().err


def _width_file(tmp_path, model: str):
    from widthsearch import WidthSpace
    from widthsearch.models.widthfile import save_width_file
    from widthsearch.solve.reconfigure import reconfigure

    space = WidthSpace.from_timm(model, input_size=(3, 16, 16))
    path = tmp_path / f"{model}.json"
    save_width_file(path, reconfigure(space, params=space.params() // 2, baselines=()), space)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("model, decided", [("mobilenetv2_100", "zero"), ("resnet18", "timm")])
def test_verify_decides_auto_once_says_so_and_keys_timm_as_before(tmp_path, capsys, model, decided):
    out = tmp_path / "r.csv"
    quick = ["--epochs", "1", "--seeds", "0", "--max-steps", "2", "--train-subset", "128"]
    args = ["verify", str(_width_file(tmp_path, model)), *quick, "--latency-runs", "0"]
    assert main([*args, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert ("note: head: zero (--head auto)" in text) == (decided == "zero")
    assert f"AdamW lr 0.002, {decided} head" in text
    recipes = {json.loads(r["recipe"]).get("head", "timm") for r in csv.DictReader(out.open())}
    assert recipes == {decided}
    # the decided policy given by name is the same setting: nothing trains again
    assert main([*args, "--head", decided, "--out", str(out)]) == 0
    assert "0 run(s) trained" in capsys.readouterr().out
