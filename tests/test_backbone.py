import logging
import urllib.error

import pytest
import torch
from torchvision.models.video import r2plus1d_18, r3d_18

from convperceiver.errors import WeightsError
from convperceiver.models.backbone import (
    BLOCK_CHANNELS,
    TruncatedR2Plus1D,
    build_backbone,
    output_grid,
)


@pytest.fixture(scope="module")
def full_model():
    torch.manual_seed(0)
    return r2plus1d_18().eval()


@pytest.fixture(scope="module")
def full_weights_file(tmp_path_factory, full_model):
    path = tmp_path_factory.mktemp("weights") / "r2plus1d_18_random.pth"
    torch.save(full_model.state_dict(), path)
    return path


@pytest.mark.parametrize("cnn_blocks", range(1, 9))
def test_truncated_backbone_equals_torchvision_stem_and_blocks(cnn_blocks, full_model):
    backbone = TruncatedR2Plus1D(cnn_blocks=cnn_blocks)
    backbone.load_state_dict(
        {
            key: value
            for key, value in full_model.state_dict().items()
            if key in backbone.state_dict()
        }
    )
    backbone.eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    blocks = [
        block
        for layer in (full_model.layer1, full_model.layer2, full_model.layer3, full_model.layer4)
        for block in layer
    ]
    with torch.no_grad():
        expected = full_model.stem(clip)
        for block in blocks[:cnn_blocks]:
            expected = block(expected)
        actual = backbone(clip)
    assert actual.shape[1] == BLOCK_CHANNELS[cnn_blocks - 1]
    assert actual.shape[2:] == output_grid(cnn_blocks, 4, 32, 32)
    torch.testing.assert_close(actual, expected, rtol=0, atol=0)


@pytest.mark.parametrize("cnn_blocks", [1, 3, 6, 8])
def test_full_state_dict_loads_into_truncated_backbone(
    cnn_blocks, full_model, full_weights_file, caplog
):
    with caplog.at_level(logging.INFO):
        backbone = build_backbone(cnn_blocks=cnn_blocks, weights=str(full_weights_file))
    full = full_model.state_dict()
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, full[key]), key
    ignored = [r for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 1 and "fc" in ignored[0].getMessage()


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(WeightsError, match=r"weights file not found: .*nothing\.pth"):
        build_backbone(cnn_blocks=4, weights=str(tmp_path / "nothing.pth"))


def test_weights_of_another_architecture_are_refused(tmp_path):
    path = tmp_path / "r3d.pth"
    torch.save(r3d_18().state_dict(), path)
    with pytest.raises(WeightsError, match=r"not an r2plus1d_18 state_dict"):
        build_backbone(cnn_blocks=8, weights=str(path))


def test_weights_with_wrong_shapes_are_refused(tmp_path, full_model):
    state = dict(full_model.state_dict())
    state["stem.0.weight"] = torch.zeros(45, 3, 1, 3, 3)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"stem\.0\.weight"):
        build_backbone(cnn_blocks=2, weights=str(path))


def test_a_pickled_object_is_not_executed(tmp_path):
    path = tmp_path / "pickle.pth"
    torch.save({"model": torch.nn.Linear(2, 2)}, path)
    with pytest.raises(WeightsError, match=r"refused: .*torch\.nn\.modules\.linear\.Linear"):
        build_backbone(cnn_blocks=2, weights=str(path))


def test_kinetics_offline_error_names_file_and_folder(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    with pytest.raises(WeightsError) as error:
        build_backbone(cnn_blocks=8, weights="kinetics400")
    message = str(error.value)
    assert "r2plus1d_18-91a641e6.pth" in message
    assert str(tmp_path / "hub" / "checkpoints") in message
    assert "\n" not in message


def test_kinetics_weights_are_read_from_the_hub_cache(tmp_path, monkeypatch, full_model):
    folder = tmp_path / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(full_model.state_dict(), folder / "r2plus1d_18-91a641e6.pth")
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    backbone = build_backbone(cnn_blocks=5, weights="kinetics400")
    assert torch.equal(backbone.stem[0].weight, full_model.stem[0].weight)
