"""Split files, folder and list layouts, the grouped hold-out, and the clip datasets on tiny
videos."""

from __future__ import annotations

import logging
import pickle
from collections import Counter
from pathlib import Path

import pytest
import torch
from data_fixtures import (
    HMDB51_CLASSES,
    HMDB51_FILMS,
    UCF101_CLASSES,
    hmdb51_name,
    split_id,
    write_hmdb51,
    write_hostile,
    write_tiny,
    write_ucf101,
)
from torch.utils.data import DataLoader

from convperceiver.data.datamodule import collate_eval
from convperceiver.data.datasets import EvalClipDataset, TrainClipDataset
from convperceiver.data.eval_clips import EvalClipSpec
from convperceiver.data.records import (
    VideoRecord,
    folder_records,
    hmdb51_records,
    holdout_split,
    list_records,
    ucf101_records,
)
from convperceiver.data.transforms import train_transform
from convperceiver.errors import DatasetError, VideoError

VIEW = (4, 24, 24, 3)  # (T, crop, crop, 3) of every clip below


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny") / "tiny.avi")  # 1.6 s


@pytest.fixture(scope="module")
def hmdb51(tmp_path_factory, tiny) -> tuple[Path, Path]:
    return write_hmdb51(tmp_path_factory.mktemp("hmdb51"), tiny)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return write_hostile(tmp_path_factory.mktemp("hostile"))


def train_dataset(records, **kwargs) -> TrainClipDataset:
    transform = train_transform(crop_size=24, horizontal_flip=True)
    options = dict(num_frames=4, clip_duration=0.5, size=(32, 43), transform=transform)
    return TrainClipDataset(records, **{**options, **kwargs})


def eval_dataset(records, **spec) -> EvalClipDataset:
    options = dict(num_frames=4, clip_duration=0.5, size=(32, 43), crop_size=24)
    return EvalClipDataset(records, spec=EvalClipSpec(**{**options, **spec}))


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_splits(hmdb51, split):
    videos, splits = hmdb51
    for subset, wanted in (("train", 1), ("test", 2)):
        records, class_names = hmdb51_records(videos, splits, split=split, subset=subset)
        assert class_names == sorted(HMDB51_CLASSES)
        expected = [
            (videos / c / hmdb51_name(film, c, n), class_names.index(c), film)
            for c in class_names
            for f, film in enumerate(HMDB51_FILMS)
            for n in (0, 1)
            if split_id(f, split) == wanted
        ]
        assert [(Path(r.path), r.label, r.group) for r in records] == expected
    unused, _ = hmdb51_records(videos, splits, split=split, subset="unused")
    assert len(unused) == 2 * len(HMDB51_CLASSES)


def test_hmdb51_missing_paths_name_the_expected_place_and_the_source(hmdb51, tmp_path):
    videos, splits = hmdb51
    with pytest.raises(DatasetError, match=r"test_train_splits\.rar") as error:
        hmdb51_records(videos, tmp_path / "nowhere", split=1, subset="train")
    assert str(tmp_path / "nowhere") in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(DatasetError, match=r"hmdb51_org\.rar"):
        hmdb51_records(tmp_path / "novideos", splits, split=1, subset="train")
    with pytest.raises(DatasetError, match=r"_test_split1\.txt"):
        hmdb51_records(videos, tmp_path, split=1, subset="train")


def test_hmdb51_video_missing_on_disk_is_left_out_with_a_warning(tiny, tmp_path, caplog):
    videos, splits = write_hmdb51(tmp_path, tiny)
    records, _ = hmdb51_records(videos, splits, split=1, subset="train")
    Path(records[0].path).unlink()
    with caplog.at_level(logging.WARNING):
        kept, _ = hmdb51_records(videos, splits, split=1, subset="train")
    assert kept == records[1:]
    assert len(caplog.records) == 1 and records[0].path in caplog.text
    everything, _ = hmdb51_records(videos, splits, split=1, subset="train", keep_missing=True)
    assert everything == records


def test_ucf101_takes_the_class_from_the_folder(tmp_path, tiny):
    videos, lists = write_ucf101(tmp_path, tiny)
    train, class_names = ucf101_records(videos, lists, split=1, subset="train")
    test, _ = ucf101_records(videos, lists, split=1, subset="test")
    assert class_names == list(UCF101_CLASSES)
    assert len(train) == len(test) == 4 * len(UCF101_CLASSES)
    handstand = [r for r in train + test if "HandStandPushups" in r.path]
    assert handstand and {r.label for r in handstand} == {UCF101_CLASSES.index("HandstandPushups")}
    assert {r.group for r in train} == {"g03", "g04"} and {r.group for r in test} == {"g01", "g02"}
    with pytest.raises(DatasetError, match=r"UCF101TrainTestSplits-RecognitionTask\.zip"):
        ucf101_records(videos, lists, split=2, subset="train")


def test_folder_records(tmp_path, tiny):
    for name in ("b_class/x.avi", "b_class/y.MP4", "a_class/z.mkv", "a_class/notes.txt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(tiny.read_bytes())
    (tmp_path / "empty_class").mkdir()
    records, class_names = folder_records(tmp_path)
    assert class_names == ["a_class", "b_class"]
    assert [(Path(r.path).name, r.label, r.group) for r in records] == [
        ("z.mkv", 0, "z"),
        ("x.avi", 1, "x"),
        ("y.MP4", 1, "y"),
    ]


def test_list_records(tmp_path, tiny):
    (tmp_path / "videos").mkdir()
    for name in ("a.avi", "b c.avi"):
        (tmp_path / "videos" / name).write_bytes(tiny.read_bytes())
    (tmp_path / "indices.txt").write_text("videos/a.avi 2\nvideos/b c.avi 0\n\n")
    records, class_names = list_records(tmp_path / "indices.txt", tmp_path)
    assert class_names == ["0", "1", "2"] and [r.label for r in records] == [2, 0]
    assert records[1].path == str(tmp_path / "videos" / "b c.avi")
    (tmp_path / "names.txt").write_text(f"{tmp_path}/videos/a.avi run\nvideos/b c.avi jump\n")
    records, class_names = list_records(tmp_path / "names.txt", tmp_path)
    assert class_names == ["jump", "run"] and [r.label for r in records] == [1, 0]
    (tmp_path / "mixed.txt").write_text("videos/a.avi 2\nvideos/b c.avi jump\n")
    with pytest.raises(DatasetError, match="mix"):
        list_records(tmp_path / "mixed.txt", tmp_path)


def synthetic_records() -> list[VideoRecord]:
    """5 classes; films hold 1-4 videos and some films appear in two classes."""
    records = []
    for label in range(5):
        for film in range(12):
            shared = film % 3 == 0  # HMDB51 cuts several classes from one film
            group = f"film{film}" if shared else f"film{film}_c{label}"
            records += [
                VideoRecord(f"{label}/{film}_{n}.avi", label, group) for n in range(film % 4 + 1)
            ]
    return records


def test_holdout_keeps_groups_whole_and_is_deterministic():
    records = synthetic_records()
    train, val = holdout_split(records, fraction=0.2, seed=3)
    assert sorted(train + val, key=records.index) == records
    assert not {r.group for r in train} & {r.group for r in val}
    assert holdout_split(records, fraction=0.2, seed=3) == (train, val)
    assert holdout_split(records, fraction=0.2, seed=4) != (train, val)
    per_class, in_val = Counter(r.label for r in records), Counter(r.label for r in val)
    for label, total in per_class.items():
        assert 0 < in_val[label] < total
        assert in_val[label] / total == pytest.approx(0.2, abs=0.15)


def test_train_items_depend_on_seed_epoch_and_index_only(tiny):
    records = [VideoRecord(str(tiny), 1, "a"), VideoRecord(str(tiny), 0, "b")]

    def first_clip(*, seed: int = 5, epoch: int = 0) -> torch.Tensor:
        dataset = train_dataset(records, seed=seed)
        dataset.set_epoch(epoch)
        return dataset[0]["clip"]

    dataset = train_dataset(records, seed=5, class_names=["zero", "one"])
    item = dataset[0]
    assert item["clip"].shape == VIEW and item["clip"].dtype == torch.uint8
    assert set(item) == {"clip", "label", "substituted"}
    assert (item["label"], item["substituted"]) == (1, 0)
    assert (dataset.num_classes, len(dataset), dataset.class_names) == (2, 2, ["zero", "one"])
    assert torch.equal(dataset[0]["clip"], item["clip"])  # asked twice: the same clip
    assert torch.equal(first_clip(), item["clip"])  # and in a fresh dataset
    assert not torch.equal(first_clip(seed=6), item["clip"])
    assert not torch.equal(first_clip(epoch=1), item["clip"])
    assert not torch.equal(dataset[1]["clip"], item["clip"])


def test_eval_items_cover_every_clip_of_every_video(tiny, tmp_path, caplog):
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    records = [
        VideoRecord(str(tiny), 0, "a"),
        VideoRecord(str(broken), 1, "b"),
        VideoRecord(str(tiny), 1, "c"),
    ]
    with caplog.at_level(logging.WARNING):
        dataset = eval_dataset(records, num_clips=0, max_clips=0)
    assert dataset.left_out_paths == [str(broken)] and str(broken) in caplog.text
    assert dataset.num_videos == 2 and [r.group for r in dataset.records] == ["a", "c"]
    items = [dataset[i] for i in range(len(dataset))]
    assert [(i["video_index"], i["view_index"]) for i in items] == [
        (v, c) for v in (0, 1) for c in range(3)
    ]
    assert [i["label"] for i in items] == [0] * 3 + [1] * 3
    assert all(i["clip"].shape == VIEW and i["clip"].dtype == torch.uint8 for i in items)


def test_three_crops_are_distinct_views_of_one_video(tiny):
    dataset = eval_dataset([VideoRecord(str(tiny), 0, "a")], num_clips=2, three_crop=True)
    items = [dataset[i] for i in range(len(dataset))]
    assert [i["view_index"] for i in items] == list(range(6))  # 2 clips x 3 crops
    assert {i["video_index"] for i in items} == {0}
    assert not torch.equal(items[0]["clip"], items[1]["clip"])


def test_an_eval_view_that_fails_to_decode_is_none_and_warned_once(tiny, tmp_path, caplog):
    path = tmp_path / "soon_broken.avi"
    path.write_bytes(tiny.read_bytes())
    dataset = eval_dataset([VideoRecord(str(path), 0, "a")], num_clips=2, three_crop=True)
    path.write_text("gone bad after the probe")
    with caplog.at_level(logging.WARNING):
        items = [dataset[i] for i in range(len(dataset))]
    assert items == [None] * 6
    assert len([r for r in caplog.records if str(path) in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("name", "broken"),
    [
        ("zero_bytes", True),
        ("text", True),
        ("truncated_mp4", True),
        ("no_frames", True),
        ("no_video_stream", True),
        ("one_frame", False),
        ("grayscale", False),
        ("odd_size", False),
    ],
)
def test_training_survives_hostile_files(hostile, tiny, name, broken, caplog):
    records = [VideoRecord(str(hostile[name]), 0, "bad"), VideoRecord(str(tiny), 1, "good")]
    dataset = train_dataset(records)
    with caplog.at_level(logging.WARNING):
        items = [dataset[0] for _ in range(3)]
    for item in items:
        assert item["clip"].shape == VIEW
        assert (item["substituted"] > 0) == broken
        assert item["label"] == (1 if broken else 0)
    # The substitute drawn does not depend on whether this process already knew the file broken.
    assert all(torch.equal(item["clip"], items[0]["clip"]) for item in items)
    warnings = [r for r in caplog.records if str(hostile[name]) in r.getMessage()]
    assert len(warnings) == (1 if broken else 0)


def test_training_gives_up_when_nothing_decodes(hostile):
    dataset = train_dataset([VideoRecord(str(hostile["text"]), 0, "a")])
    with pytest.raises(VideoError, match="in a row"):
        dataset[0]


def test_datasets_pickle_for_spawned_workers_and_batch(tiny):
    records = [VideoRecord(str(tiny), 0, "a"), VideoRecord(str(tiny), 1, "b")]
    train = pickle.loads(pickle.dumps(train_dataset(records)))
    batch = next(iter(DataLoader(train, batch_size=2)))
    assert batch["clip"].shape == (2, *VIEW) and batch["clip"].dtype == torch.uint8
    assert batch["label"].tolist() == [0, 1] and batch["substituted"].tolist() == [0, 0]
    evaluation = pickle.loads(pickle.dumps(eval_dataset(records, num_clips=1)))
    batch = collate_eval([evaluation[0], evaluation[1]], view_shape=VIEW)
    assert batch["clip"].shape == (2, *VIEW) and batch["video_index"].tolist() == [0, 1]
