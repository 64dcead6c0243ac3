import logging
import re

import pytest
import torch
from conftest import tiny_model_config
from torchvision.models import resnet18
from torchvision.models.video import r2plus1d_18

from convperceiver.errors import WeightsError
from convperceiver.models import build_model
from convperceiver.models.init_from import load_init_weights, map_keys

HEAD = ("fc.", "norm.")


def build(seed: int, *, num_classes: int = 5, **overrides):
    torch.manual_seed(seed)
    return build_model(tiny_model_config(**overrides), num_classes=num_classes)


def save(path, state):
    torch.save(state, path)
    return path


def lightning_checkpoint(model, prefix="model."):
    state = {prefix + key: value for key, value in model.state_dict().items()}
    return {"state_dict": state, "epoch": 3, "optimizer_states": [{"state": {}}]}


def test_round_trip_loads_the_body_and_keeps_a_new_head_for_another_class_count(tmp_path, caplog):
    saved = build(0)
    path = save(tmp_path / "best.ckpt", lightning_checkpoint(saved))
    fresh = build(1, num_classes=7)
    fc_as_built = fresh.fc.weight.detach().clone()
    with caplog.at_level(logging.INFO, logger="convperceiver.models.init_from"):
        report = load_init_weights(fresh, path)
    source, loaded = saved.state_dict(), fresh.state_dict()
    body = [key for key in loaded if not key.startswith("fc.")]
    assert any(key.startswith("backbone.") for key in body)
    assert any(key.startswith(("cross_blocks.", "self_blocks.")) for key in body)
    assert all(torch.equal(loaded[key], source[key]) for key in body)
    assert torch.equal(fresh.fc.weight, fc_as_built)
    assert set(report.skipped) == {"fc.weight", "fc.bias"}
    assert sorted(report.loaded) == sorted(body)
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("init_from")]
    assert len(messages) == 1
    assert f"loaded {len(body)} tensors, skipped 2" in messages[0]
    assert "fc.weight: shape (5, 32) in the file vs (7, 32) in the model" in messages[0]


def test_same_class_count_loads_every_tensor(tmp_path):
    saved = build(0)
    path = save(tmp_path / "last.ckpt", lightning_checkpoint(saved))
    fresh = build(1)
    report = load_init_weights(fresh, path)
    assert report.skipped == {}
    assert torch.equal(fresh.fc.weight, saved.fc.weight)


def test_pretraining_checkpoint_loads_the_encoder_and_ignores_the_decoder(tmp_path):
    saved = build(0)
    checkpoint = lightning_checkpoint(saved, prefix="model.encoder.")
    checkpoint["state_dict"]["model.decoder.x"] = torch.zeros(3)
    checkpoint["state_dict"]["model.decoder.fc.weight"] = torch.zeros(5, 32)
    fresh = build(1)
    report = load_init_weights(fresh, save(tmp_path / "pretrain.ckpt", checkpoint))
    assert report.skipped == {}
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in saved.state_dict().items())


def test_fewer_cnn_blocks_in_the_file_load_what_they_have(tmp_path):
    saved = build(0, cnn_blocks=1)
    fresh = build(1, cnn_blocks=2)
    report = load_init_weights(fresh, save(tmp_path / "k1.ckpt", lightning_checkpoint(saved)))
    assert "backbone.layer1.0.conv1.0.0.weight" in report.loaded
    assert report.skipped["backbone.layer1.1.conv1.0.0.weight"] == "absent in the file"


def test_torchvision_state_dict_loads_into_the_backbone(tmp_path):
    torch.manual_seed(0)
    state = r2plus1d_18().state_dict()
    fresh = build(1)
    report = load_init_weights(fresh, save(tmp_path / "r2plus1d_18.pth", state))
    own = fresh.backbone.state_dict()
    assert all(torch.equal(value, state[key]) for key, value in own.items())
    assert {f"backbone.{key}" for key in own} <= set(report.loaded)
    assert not any(key.startswith(HEAD) for key in report.loaded)


@pytest.mark.parametrize("baseline", [True, False])
def test_torchvision_head_only_maps_onto_the_baseline_head(baseline):
    state = {"stem.0.weight": torch.zeros(1), "fc.weight": torch.zeros(400, 512)}
    mapped = map_keys(state, torchvision_head=baseline)
    assert "backbone.stem.0.weight" in mapped
    assert ("fc.weight" in mapped) is baseline


def one_line_error(model, path) -> str:
    with pytest.raises(WeightsError) as error:
        load_init_weights(model, path)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_missing_file_is_one_line(tmp_path):
    assert "file not found" in one_line_error(build(0), tmp_path / "none.ckpt")


def test_text_file_is_one_line(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not weights\nat all\n")
    assert "is not a PyTorch tensor file" in one_line_error(build(0), path)


def test_file_without_tensors_is_one_line(tmp_path):
    path = save(tmp_path / "meta.ckpt", {"epoch": 3, "global_step": 10})
    assert "neither a checkpoint" in one_line_error(build(0), path)


@pytest.mark.parametrize("arch", ["hybrid", "baseline"])
def test_another_architecture_is_one_line_naming_the_matches(tmp_path, arch):
    # resnet18's head and downsample norms fit the baseline's; no conv weight does.
    state = resnet18(num_classes=5).state_dict()
    model = build(0, arch=arch)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    message = one_line_error(model, save(tmp_path / "resnet18.pth", state))
    matched = int(re.search(rf"(\d+) of its {len(state)} tensors match", message).group(1))
    assert (matched > 0) is (arch == "baseline")
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
