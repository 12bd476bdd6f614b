"""What training reads of a model's output (issue 33): the rule of
:mod:`widthsearch.train.output` on real outputs, its check against what the analysis saw, and
a real training run of models that return a named tuple or a dict."""

from __future__ import annotations

import collections
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from widthsearch import WidthSpace
from widthsearch.errors import ModelOutputError
from widthsearch.space.source import ModelRef
from widthsearch.train.data import load_dataset
from widthsearch.train.loop import Recipe, train
from widthsearch.train.output import check_outputs, describe, logits, select

NETS = str(Path(__file__).parents[1] / "data" / "train_mode_nets.py")
SIZE = (3, 16, 16)


def _outputs(name: str) -> dict:
    return WidthSpace.from_ref(f"{NETS}:{name}", input_size=SIZE).outputs


def test_the_rule_picks_the_logits_of_every_kind_of_output():
    x = torch.randn(2, 10)
    e = torch.randn(2, 4)
    Out = collections.namedtuple("Out", ["values", "indices"])
    assert select(x)[0] is x and select(x)[1] == ""
    assert select({"embedding": e, "logits": x})[1] == "['logits']"
    assert select({"aux": e, "out": x})[1] == "['out']"
    assert select({"a": None, "b": x})[1] == "['b']"  # no logits or out: the first tensor
    assert select((x, e))[1] == "[0]" and select([None, x])[1] == "[1]"
    assert select(Out(x, e))[1] == ".values"
    assert select(Out(x, e), "indices")[1] == ".indices"
    assert select((e, x), "1")[0] is x and select((e, x), "-1")[0] is x
    assert select({"embedding": e, "logits": x}, "embedding")[0] is e
    assert logits(x) is x and logits({"out": x}) is x
    for out, key in [(x, "logits"), ((x, e), "2"), ({"out": x}, "logits"), ({"a": 1}, None)]:
        with pytest.raises(ModelOutputError) as caught:
            select(out, key)
        assert len(str(caught.value).splitlines()) == 1


def test_the_check_holds_each_mode_to_batch_and_classes():
    aux = _outputs("AuxNet")  # eval: a tensor; training: a named tuple (logits, aux_logits)
    assert type(aux["train"]).__name__ == "AuxOutputs"
    read = check_outputs(aux, 10)
    assert "output itself in eval mode" in read and "output.logits in training mode" in read
    assert "[batch, 10]" in read
    assert "the model's output['logits']" in check_outputs(_outputs("DictNet"), 10)

    seg = _outputs("SegNet")  # out: [batch, classes, H, W]
    with pytest.raises(ModelOutputError) as caught:
        check_outputs(seg, 10)
    message = str(caught.value)
    assert "output['out']" in message and "[1, 10, 16, 16] in eval mode" in message
    assert "output=KEY" in message
    assert check_outputs(seg, 10, "cls") == "the model's output['cls'] ([batch, 10])"
    assert "not [batch, classes]: verify refuses it" in describe(seg)

    with pytest.raises(ModelOutputError, match=r"needs \[batch, classes\] = \[1, 4\]"):
        check_outputs(aux, 4)  # a model built for other classes than the data's


@pytest.mark.parametrize("name", ["AuxNet", "DictNet"])
def test_training_a_model_whose_output_is_not_a_tensor(name):
    """Two real optimizer steps on digits and a validation pass: the loss is on the logits
    the rule picks (the auxiliary head gets no gradient from it: its outputs are left out)."""
    data = load_dataset("digits", SIZE)
    val = data.val
    assert val.images is not None
    data = replace(data, val=replace(val, images=val.images[:64], labels=val.labels[:64]))
    recipe = Recipe(epochs=1, batch_size=16, max_steps=2, train_subset=32)
    build = ModelRef.parse(f"{NETS}:{name}").build
    result = train(build, data, SIZE, recipe, seed=0, device=torch.device("cpu"))
    assert result.steps == 2 and torch.isfinite(torch.tensor(result.loss))
    assert 0.0 <= result.top1 <= 1.0


def test_the_recipe_records_the_output_only_when_set():
    plain = Recipe()
    assert "output" not in plain.to_dict() and "output" not in plain.key()
    assert Recipe(output="cls").to_dict()["output"] == "cls"
