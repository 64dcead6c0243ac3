"""The datamodule: splits by protocol, the evaluation clip spec, uint8 loaders, the epoch."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from data_fixtures import HMDB51_CLASSES, write_hmdb51, write_tiny

from convperceiver.config import DataConfig, EvalConfig
from convperceiver.data.datamodule import Splits, VideoDataModule, build_splits, collate_eval
from convperceiver.data.eval_clips import EvalClipSpec, eval_clip_spec
from convperceiver.data.records import VideoRecord

TINY = dict(num_frames=4, clip_duration=0.5, resize=[32, 43], crop_size=24, batch_size=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny") / "tiny.avi")  # 1.6 s


@pytest.fixture(scope="module")
def hmdb51(tmp_path_factory, tiny) -> DataConfig:
    videos, splits = write_hmdb51(tmp_path_factory.mktemp("hmdb51"), tiny)
    return DataConfig(dataset="hmdb51", root=str(videos), annotations=str(splits), **TINY)


def test_holdout_protocol_takes_val_from_train_and_test_protocol_uses_the_test_split(hmdb51):
    holdout = build_splits(hmdb51, seed=0)
    groups = lambda records: {r.group for r in records}  # noqa: E731
    assert holdout.class_names == sorted(HMDB51_CLASSES)
    assert holdout.val and not groups(holdout.val) & groups(holdout.train)
    assert not {r.path for r in holdout.val + holdout.train} & {r.path for r in holdout.test}
    test = build_splits(replace(hmdb51, val_protocol="test"), seed=0)
    assert test.val == test.test == holdout.test
    assert sorted(test.train, key=str) == sorted(holdout.train + holdout.val, key=str)


def test_eval_spec_takes_the_training_clip_where_eval_says_none():
    data = DataConfig(num_frames=8, clip_duration=1.5, resize=[40, 50], crop_size=32)
    spec = eval_clip_spec(data, EvalConfig(num_clips=3, max_clips=5, three_crop=True))
    assert spec == EvalClipSpec(
        num_frames=8,
        clip_duration=1.5,
        num_clips=3,
        max_clips=5,
        size=(40, 50),
        crop_size=32,
        three_crop=True,
    )
    assert (spec.views_per_clip, spec.view_shape) == (3, (8, 32, 32, 3))
    own = eval_clip_spec(data, EvalConfig(num_frames=16, clip_duration=4.0))
    assert (own.num_frames, own.clip_duration, own.views_per_clip) == (16, 4.0, 1)
    assert len(own.windows(9.0)) == 2 and all(len(times) == 16 for times in own.windows(9.0))


def test_collate_eval_counts_what_it_drops():
    item = {"clip": torch.zeros(4, 24, 24, 3, dtype=torch.uint8), "label": 1}
    item |= {"video_index": 0, "view_index": 2}
    batch = collate_eval([None, item, None], view_shape=(4, 24, 24, 3))
    assert batch["dropped"] == 2 and batch["clip"].shape == (1, 4, 24, 24, 3)
    assert batch["view_index"].tolist() == [2]
    empty = collate_eval([None], view_shape=(4, 24, 24, 3))
    assert empty["dropped"] == 1 and empty["clip"].shape == (0, 4, 24, 24, 3)
    assert set(empty) == set(batch) and len(empty["label"]) == 0


def datamodule_for(tiny: Path, *, workers: int, three_crop: bool = False) -> VideoDataModule:
    """Four training videos, each its own class, so a label names the item it came from."""
    records = [VideoRecord(str(tiny), label, f"g{label}") for label in range(4)]
    data = DataConfig(dataset="folder", root="unused", num_workers=workers, **TINY)
    datamodule = VideoDataModule(data, EvalConfig(num_clips=2, three_crop=three_crop), seed=3)
    datamodule.splits = Splits(records, records[:1], records[:2], list("abcd"), "given")
    return datamodule


def test_loaders_yield_uint8_clips_of_the_contract(tiny):
    datamodule = datamodule_for(tiny, workers=0, three_crop=True)
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["clip"].shape == (2, 4, 24, 24, 3) and batch["clip"].dtype == torch.uint8
    assert set(batch) == {"clip", "label", "substituted"}
    loader = datamodule.test_dataloader()
    batches = list(loader)
    assert loader.collate_fn.func is collate_eval
    assert set(batches[0]) == {"clip", "label", "video_index", "view_index", "dropped"}
    assert batches[0]["clip"].shape == (2, 4, 24, 24, 3) and batches[0]["clip"].dtype == torch.uint8
    views = sorted(
        (int(v), int(i))
        for b in batches
        for v, i in zip(b["video_index"], b["view_index"], strict=True)
    )
    assert views == [(v, i) for v in (0, 1) for i in range(6)]  # 2 videos x 2 clips x 3 crops


def epoch_clips(datamodule: VideoDataModule, epochs: int) -> list[dict[int, torch.Tensor]]:
    """Per epoch, each training item's clip by its index (its label), one loader throughout."""
    loader = datamodule.train_dataloader()
    clips = []
    for epoch in range(epochs):
        datamodule.set_epoch(epoch)
        clips.append(
            {
                int(label): clip
                for batch in loader
                for label, clip in zip(batch["label"], batch["clip"], strict=True)
            }
        )
    return clips


def test_training_clips_depend_on_the_epoch_not_on_the_workers(tiny):
    torch.manual_seed(0)  # the shuffled order differs between the two loaders
    alone = epoch_clips(datamodule_for(tiny, workers=0), epochs=2)
    torch.manual_seed(1)
    workers = epoch_clips(datamodule_for(tiny, workers=2), epochs=2)  # persistent workers
    for epoch in (0, 1):
        assert alone[epoch].keys() == workers[epoch].keys() == {0, 1, 2, 3}
        assert all(torch.equal(alone[epoch][i], workers[epoch][i]) for i in range(4))
    assert all(not torch.equal(alone[0][i], alone[1][i]) for i in range(4))


@pytest.mark.skipif(
    __import__("convperceiver.data.video_cuda", fromlist=["x"]).cuda_decoding_problem() is None,
    reason="GPU decoding runs here, so there is no fallback to see",
)
def test_gpu_decoding_without_cuda_falls_back_to_pyav_with_one_warning(tiny, caplog):
    datamodule = datamodule_for(tiny, workers=0)
    datamodule.data = replace(datamodule.data, decoder="torchcodec-cuda")
    datamodule.spec = replace(datamodule.spec, decoder="torchcodec-cuda")
    reference = datamodule_for(tiny, workers=0)
    with caplog.at_level("WARNING"):
        clips = epoch_clips(datamodule, 1)[0]
        views = next(iter(datamodule.test_dataloader()))
    expected = epoch_clips(reference, 1)[0]
    assert clips.keys() == expected.keys()
    assert all(torch.equal(clips[label], expected[label]) for label in clips)
    assert torch.equal(views["clip"], next(iter(reference.test_dataloader()))["clip"])
    fallbacks = [r for r in caplog.records if "decoding with PyAV instead" in r.getMessage()]
    assert len(fallbacks) <= 1  # said once per process (an earlier test may have said it)
