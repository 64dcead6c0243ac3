"""`data check`: every broken or short file named with its problem, and a dataset summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_fixtures import (
    HMDB51_CLASSES,
    write_hmdb51,
    write_hostile,
    write_overstated,
    write_tiny,
)

from convperceiver.data.check import check_dataset, check_records
from convperceiver.data.records import VideoRecord, hmdb51_records
from convperceiver.errors import DatasetError

PROBLEMS = {  # hostile file -> (words its problem must hold, whether it breaks the dataset)
    "zero_bytes": ("cannot open", True),
    "text": ("cannot open", True),
    "truncated_mp4": ("cannot open", True),
    "truncated_avi": ("truncated or mislabelled", False),
    "no_frames": ("zero frames", True),
    "no_video_stream": ("no video stream", True),
    "one_frame": ("shorter than a clip", False),
    "grayscale": ("", False),
    "odd_size": ("", False),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, Path]:
    return write_hostile(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny") / "tiny.avi", fps=10)  # 4 s


def test_check_records_names_each_problem(hostile):
    records = [VideoRecord(str(hostile[name]), 0, name) for name in PROBLEMS]
    report = check_records(records, clip_duration=2.0)
    found = {Path(p["path"]).name: p for p in report.to_dict()["problems"]}
    for name, (words, broken) in PROBLEMS.items():
        problem = found.get(hostile[name].name)
        if not words:
            assert problem is None, problem
            continue
        assert words in problem["problem"], problem
        assert problem["level"] == ("broken" if broken else "warning")
    assert not report.usable


def test_a_short_video_is_a_warning_not_a_breakage(hostile):
    report = check_records([VideoRecord(str(hostile["one_frame"]), 0, "a")], clip_duration=2.0)
    assert report.usable and len(report.problems) == 1


def test_check_dataset_reports_missing_files_and_summarises(tmp_path, tiny):
    videos, splits = write_hmdb51(tmp_path, tiny)
    train, _ = hmdb51_records(videos, splits, split=1, subset="train")
    Path(train[0].path).unlink()
    report = check_dataset("hmdb51", videos, splits, split=1, clip_duration=2.0)
    assert not report.usable
    assert [(p.path, p.problem) for p in report.problems] == [
        (train[0].path, "missing from disk, though the annotations name it")
    ]
    summary = json.loads(json.dumps(report.to_dict()))["summary"]
    assert summary["per_split"] == {"train": 12, "test": 6}
    assert summary["per_class"] == {c: {"train": 4, "test": 2} for c in sorted(HMDB51_CLASSES)}
    assert summary["duration_s"] == {"min": 4.0, "median": 4.0, "max": 4.0}
    assert summary["fps"] == {"10": 17} and summary["sizes"] == {"64x48": 17}
    text = report.format_text()
    assert "videos: 18 (train 12, test 6) in 3 classes (6-6 per class)" in text
    assert "duration: min 4.00 s, median 4.00 s, max 4.00 s" in text
    assert train[0].path in text and "usable: no" in text


def test_check_dataset_reads_folder_and_list_layouts(tmp_path, tiny):
    for part in ("train", "test"):
        for name in ("run/a.avi", "jump/b.avi"):
            (tmp_path / part / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / part / name).write_bytes(tiny.read_bytes())
    report = check_dataset("folder", tmp_path, clip_duration=2.0)
    assert report.usable and report.summary()["per_split"] == {"train": 2, "test": 2}
    (tmp_path / "all.txt").write_text("train/run/a.avi run\ntest/jump/b.avi jump\ngone.avi run\n")
    report = check_dataset("list", tmp_path, tmp_path / "all.txt", clip_duration=2.0)
    assert [Path(p.path).name for p in report.problems] == ["gone.avi"]
    with pytest.raises(DatasetError, match=r"train\.txt"):
        check_dataset("list", tmp_path / "train", clip_duration=2.0)


def test_files_that_overstate_their_length_are_warnings_with_their_real_duration(tmp_path):
    files = write_overstated(tmp_path)
    records = [VideoRecord(str(path), 0, name) for name, path in files.items()]
    report = check_records(records, clip_duration=1.0)
    assert report.usable
    found = json.loads(json.dumps(report.to_dict()))
    assert found["summary"]["warnings"] == 3 and found["summary"]["broken"] == 0
    by_path = {p["path"]: p for p in found["problems"]}
    for name, path in files.items():
        problem = by_path[str(path)]
        assert problem["level"] == "warning"
        assert f"the header says {16 if name == 'overstated_avi' else 4}.00 s" in problem["problem"]
    assert found["summary"]["duration_s"]["max"] < 4.1
    assert "problems: 0 broken, 3 warnings" in report.format_text()


def test_check_an_unlabelled_folder(tmp_path, tiny):
    for name in ("a.avi", "sub/b.avi"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(tiny.read_bytes())
    report = check_dataset("videos", tmp_path, clip_duration=2.0)
    assert report.usable and report.summary()["per_split"] == {"all": 2}
    assert "videos: 2 (all 2) unlabelled" in report.format_text()
