"""Train mode is part of the analysis (issue 33): what runs only in training (auxiliary heads,
stochastic depth, a term that couples two branches) is grouped and resized with everything
else, so every accepted model realizes, trains a step and exports at other widths; a model
that fails in training is refused at parse time, in one line that names the module."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import count, random_widths
from widthsearch import WidthSpace
from widthsearch.errors import UnsupportedModelError
from widthsearch.hardware.latency_model import latency_features
from widthsearch.hardware.memory import activation_memory
from widthsearch.hardware.memory_trace import saved_bytes
from widthsearch.models.native import build_spec
from widthsearch.space import _portable
from widthsearch.space.source import ModelRef

NETS = str(Path(__file__).parents[1] / "data" / "train_mode_nets.py")
SIZE = (3, 16, 16)


def _space(name: str, size=SIZE, **kwargs) -> WidthSpace:
    return WidthSpace.from_ref(f"{NETS}:{name}", input_size=size, **kwargs)


def _googlenet(size=(3, 32, 32)) -> WidthSpace:
    with warnings.catch_warnings():  # torchvision's notice about its default init
        warnings.simplefilter("ignore", FutureWarning)
        return WidthSpace.from_ref(
            "torchvision.models:googlenet", input_size=size, num_classes=10, init_weights=False
        )


def _tensors(out) -> list[torch.Tensor]:
    values = out.values() if isinstance(out, dict) else out if isinstance(out, tuple) else [out]
    return [t for t in values if isinstance(t, torch.Tensor)]


def _trains_and_exports(space: WidthSpace, seeds=(0, 1)) -> None:
    """At random widths (some groups wider, some narrower): the realized model and the model
    an exported file builds count as predicted, and both run a training step (batch 2) that
    gives every parameter a gradient."""
    for seed in seeds:
        widths = random_widths(space, seed, high=1.5)
        predicted = (space.params(widths), space.macs(widths))
        for model in (space.realize(widths), _portable.build(build_spec(space, widths))):
            assert count(model, space.input_size) == predicted
            model.train()
            out = model(torch.randn(2, *space.input_size))
            sum(t.float().square().mean() for t in _tensors(out)).backward()
            assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_an_auxiliary_head_is_resized_with_the_model():
    space = _space("AuxNet")
    aux = [lay for lay in space.layers if lay.name.startswith("aux.")]
    assert [lay.name for lay in aux] == ["aux.conv.0", "aux.conv.1", "aux.fc1", "aux.fc2"]
    assert all(lay.train_only and lay.macs == 0 and lay.params > 0 for lay in aux)
    assert not space.constant_params  # it was width-independent when only eval was traced
    # the head reads the first stage: the stage's group reaches it; its own widths are free
    stage1 = next(lay for lay in space.layers if lay.name == "stage1.0")
    assert next(lay for lay in aux if lay.name == "aux.conv.0").in_groups == stage1.out_groups
    assert not space.groups[aux[0].out_groups[0]].fixed
    # params count the head, MACs are the eval forward's
    model = space.realize()
    assert count(model, SIZE) == (space.params(), space.macs())
    _trains_and_exports(space)


def test_googlenets_auxiliary_heads_train_at_other_widths():
    space = _googlenet()
    train_only = {lay.name.split(".")[0] for lay in space.layers if lay.train_only}
    assert train_only == {"aux1", "aux2"}
    assert not space.constant_params
    _trains_and_exports(space, seeds=(0,))


def test_stochastic_depth_and_a_training_only_coupling():
    space = _space("DropPathNet")
    assert not any(lay.train_only for lay in space.layers)
    _trains_and_exports(space)

    tied = _space("TiedInTraining")
    a, b = (next(lay for lay in tied.layers if lay.name == n) for n in ("a.0", "b.0"))
    assert a.out_groups == b.out_groups  # training subtracts them: one width
    _trains_and_exports(tied)


def test_timm_drop_path_parses_as_without_it():
    plain = WidthSpace.from_timm("resnet18", input_size=(3, 32, 32))
    dropped = WidthSpace.from_timm("resnet18", input_size=(3, 32, 32), drop_path_rate=0.2)
    assert dropped.fingerprint == plain.fingerprint
    assert (dropped.params(), dropped.macs()) == (plain.params(), plain.macs())


def test_the_analysed_model_is_left_as_it_was():
    """The training pass updates batch-norm statistics: the module's buffers and its mode are
    as they were after the analysis."""
    model = ModelRef.parse(f"{NETS}:DropPathNet").build().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    WidthSpace.from_module(model, torch.randn(1, *SIZE))
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_model_failing_in_training_is_refused_naming_the_module():
    with pytest.raises(UnsupportedModelError) as caught:
        _space("BigAuxKernel")
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "in training mode (batch 2) in module 'aux_conv' (Conv2d)" in message
    assert _space("BigAuxKernel", size=(3, 32, 32)).params() > 0  # large enough: accepted


def test_a_forward_that_needs_more_than_the_image_says_so():
    with pytest.raises(UnsupportedModelError) as caught:
        _space("TwoInputs")
    message = str(caught.value)
    assert "TwoInputs.forward needs more than the image" in message and "'mask'" in message
    assert "input size" not in message


def test_memory_and_latency_of_a_model_with_an_auxiliary_head():
    """The training step's activation memory counts the auxiliary head (it runs then), the
    latency model does not (an eval forward): both map onto the space's groups."""
    space = _space("AuxNet")
    memory = activation_memory(space, batch_size=2)
    for seed in (0, 1):
        widths = random_widths(space, seed)
        model = space.realize(widths)
        assert memory(widths) == saved_bytes(model, torch.zeros(2, *SIZE))[0]
    aux_groups = {g for lay in space.layers if lay.train_only for g in lay.out_groups}
    features = latency_features(space)
    assert not any(g in aux_groups for f in features.values() for m, _ in f.terms for g, _ in m)
