"""VideoPredictor: every evaluation view of a file, three crops honoured, errors as entries."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import tiny_model_config
from data_fixtures import write_tiny

from convperceiver.config import Config
from convperceiver.data.eval_clips import decode_views, eval_clip_spec
from convperceiver.data.transforms import normalize_clips
from convperceiver.engine.predict import VideoPredictor
from convperceiver.models import build_model

CLASSES = ["left", "right", "up"]


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("predict") / "tiny.avi")  # 1.6 s


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_model_config(), num_classes=len(CLASSES)).eval()


def config_with(**eval_settings) -> Config:
    config = Config()
    data = replace(
        config.data, num_frames=4, clip_duration=0.5, resize=[32, 43], crop_size=24, mean=[0.4] * 3
    )
    return replace(config, data=data, eval=replace(config.eval, num_clips=2, **eval_settings))


def test_predict_gives_the_top_classes_of_a_video(model, video):
    prediction = VideoPredictor.from_config(model, config_with(), CLASSES).predict(video, topk=2)
    assert len(prediction.labels) == 2 and set(prediction.labels) <= set(CLASSES)
    assert prediction.probabilities == sorted(prediction.probabilities, reverse=True)
    assert (prediction.num_clips, prediction.num_views, prediction.error) == (2, 2, "")
    assert prediction.to_dict()["num_views"] == 2


def test_three_crop_gives_three_times_the_views(model, video):
    plain = VideoPredictor.from_config(model, config_with(), CLASSES)
    three = VideoPredictor.from_config(model, config_with(three_crop=True), CLASSES)
    assert len(three.clips(video)) == 3 * len(plain.clips(video))
    prediction = three.predict(video)
    assert (prediction.num_clips, prediction.num_views) == (2, 6)


def test_a_file_that_cannot_be_read_is_an_error_entry(model, tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    prediction = VideoPredictor.from_config(model, config_with(), CLASSES).predict(broken)
    assert "broken.avi" in prediction.error and prediction.labels == []
    assert prediction.to_dict() == {"path": str(broken), "error": prediction.error}


def test_probabilities_are_the_mean_softmax_over_every_view(model, video):
    config = config_with(three_crop=True)
    prediction = VideoPredictor.from_config(model, config, CLASSES).predict(video)
    views = decode_views(video, eval_clip_spec(config.data, config.eval))  # (6, T, H, W, 3)
    with torch.no_grad():
        clips = normalize_clips(views, config.data.mean, config.data.std).contiguous()
        expected = model(clips).softmax(dim=-1).mean(dim=0)
    got = dict(zip(prediction.labels, prediction.probabilities, strict=True))
    assert got == pytest.approx(dict(zip(CLASSES, expected.tolist(), strict=True)), abs=1e-5)
