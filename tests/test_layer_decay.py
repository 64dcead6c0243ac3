import pytest
import torch
from conftest import tiny_model_config
from test_classifier import VARIANTS

from convperceiver.config import OptimConfig
from convperceiver.engine.layer_decay import parameter_groups
from convperceiver.engine.optim import build_optimizer
from convperceiver.models import build_model

LR, CNN_LR, DECAY, WEIGHT_DECAY = 1e-3, 1e-4, 0.5, 0.05


def build(variant: str = "cross1_self2", **overrides):
    torch.manual_seed(0)
    return build_model(tiny_model_config(**VARIANTS[variant], **overrides), num_classes=5)


def groups_of(model, *, layer_decay: float = DECAY, cnn_lr: float | None = CNN_LR):
    return parameter_groups(
        model, lr=LR, cnn_lr=cnn_lr, layer_decay=layer_decay, weight_decay=WEIGHT_DECAY
    )


def group_by_name(model, groups) -> dict[str, dict]:
    """Each parameter's name -> the group holding it."""
    holder = {id(p): group for group in groups for p in group["params"]}
    return {name: holder[id(p)] for name, p in model.named_parameters() if id(p) in holder}


def forward_order(model) -> list[str]:
    """Module prefixes in the order the forward pass runs them, stem first, head last."""
    order = ["backbone.stem."] + [
        f"backbone.{layer}.{index}."
        for layer in model.backbone.layer_names
        for index in range(len(getattr(model.backbone, layer)))
    ]
    for group, self_layers in enumerate(getattr(model, "self_blocks", [])):
        if group < len(model.cross_blocks):
            order.append(f"cross_blocks.{group}.")
        order += [f"self_blocks.{group}.{index}." for index in range(len(self_layers))]
    return [*order, "fc."]


@pytest.mark.parametrize("variant", VARIANTS)
def test_lr_grows_block_by_block_from_the_stem_to_the_head(variant):
    model = build(variant)
    groups = groups_of(model, cnn_lr=LR)
    assert [g["lr_scale"] for g in groups] == sorted(g["lr_scale"] for g in groups)
    holder = group_by_name(model, groups)
    order = forward_order(model)
    scales = [
        {holder[name]["lr_scale"] for name in holder if name.startswith(prefix)} for prefix in order
    ]
    assert all(len(scale) == 1 for scale in scales)
    scales = [scale.pop() for scale in scales]
    assert scales == sorted(scales) and len(set(scales)) == len(scales)
    depth = len(order) - 1
    assert holder["fc.weight"]["lr"] == pytest.approx(LR)
    assert holder["backbone.stem.0.weight"]["lr"] == pytest.approx(LR * DECAY**depth)


def test_stem_starts_from_the_cnn_lr_and_position_free_parameters_join_the_first_block():
    model = build("cross1_self2")
    holder = group_by_name(model, groups_of(model))
    depth = model.backbone.cnn_blocks + 1 + 2 + 1  # stem at 0, then blocks, then the head
    assert holder["backbone.stem.0.weight"]["lr"] == pytest.approx(CNN_LR * DECAY**depth)
    cross = holder["cross_blocks.0.attend.to_q.weight"]["lr_scale"]
    assert holder["latents"]["lr_scale"] == holder["cls_token"]["lr_scale"] == cross
    assert holder["norm.weight"]["lr"] == pytest.approx(LR)


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_trainable_parameter_is_in_one_group_and_frozen_ones_in_none(variant):
    model = build(variant, freeze_cnn_blocks=1)
    groups = groups_of(model)
    grouped = [id(p) for group in groups for p in group["params"]]
    trainable = [id(p) for p in model.parameters() if p.requires_grad]
    assert len(trainable) < len(list(model.parameters()))
    assert sorted(grouped) == sorted(trainable)
    assert len({group["name"] for group in groups}) == len(groups)
    torch.optim.AdamW(groups)


def test_no_weight_decay_on_biases_norms_latents_and_cls_token():
    model = build("cross1_self2")
    holder = group_by_name(model, groups_of(model))
    for name, parameter in model.named_parameters():
        expected = 0.0 if parameter.ndim == 1 or name in {"latents", "cls_token"} else WEIGHT_DECAY
        assert holder[name]["weight_decay"] == expected, name
    assert holder["backbone.stem.1.weight"]["weight_decay"] == 0.0  # a BatchNorm weight


@pytest.mark.parametrize("variant", VARIANTS)
def test_no_layer_decay_reproduces_the_two_learning_rates_of_build_optimizer(variant):
    model = build(variant)
    groups = groups_of(model, layer_decay=1.0)
    optimizer = build_optimizer(model, OptimConfig(lr=LR, cnn_lr=CNN_LR))
    ours, theirs = group_by_name(model, groups), group_by_name(model, optimizer.param_groups)
    assert {name: group["lr"] for name, group in ours.items()} == {
        name: group["lr"] for name, group in theirs.items()
    }
    assert len(groups) <= 4


def test_layer_decay_outside_its_range_is_refused():
    with pytest.raises(ValueError, match="layer_decay"):
        groups_of(build(), layer_decay=0.0)
