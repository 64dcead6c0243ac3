"""Dataset layouts: official annotation folders beside or inside the video root, unlabelled
folders of videos, and the expansion of folders into video files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from data_fixtures import HMDB51_CLASSES, UCF101_CLASSES, write_hmdb51, write_tiny, write_ucf101

from convperceiver.data.layouts import dataset_subsets, video_files
from convperceiver.errors import DatasetError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny(tmp_path_factory.mktemp("tiny") / "tiny.avi", num_frames=4)


def test_hmdb51_split_folder_is_found_beside_or_inside_the_video_root(tmp_path, tiny):
    videos, splits = write_hmdb51(tmp_path, tiny)
    beside = splits.rename(videos.parent / "testTrainMulti_7030_splits")
    found, class_names = dataset_subsets("hmdb51", videos)
    assert class_names == sorted(HMDB51_CLASSES)
    assert (len(found["train"]), len(found["test"])) == (12, 6)
    beside.rename(videos / beside.name)
    assert dataset_subsets("hmdb51", videos) == (found, class_names)
    shutil.rmtree(videos / beside.name)
    with pytest.raises(DatasetError) as error:
        dataset_subsets("hmdb51", videos)
    message = str(error.value)
    assert str(beside) in message and str(videos / beside.name) in message
    assert "\n" not in message


def test_ucf101_list_folder_is_found_beside_or_inside_the_video_root(tmp_path, tiny):
    videos, lists = write_ucf101(tmp_path, tiny)
    found, class_names = dataset_subsets("ucf101", videos)
    assert class_names == list(UCF101_CLASSES)
    assert (len(found["train"]), len(found["test"])) == (12, 12)
    lists.rename(videos / lists.name)
    assert dataset_subsets("ucf101", videos) == (found, class_names)
    shutil.rmtree(videos / lists.name)
    with pytest.raises(DatasetError, match="ucfTrainTestlist") as error:
        dataset_subsets("ucf101", videos)
    assert str(lists) in str(error.value) and str(videos / lists.name) in str(error.value)


def unlabelled_tree(root: Path, tiny: Path) -> list[Path]:
    """Videos at several depths and with mixed-case suffixes, beside files that are not videos."""
    videos = [root / "b.MP4", root / "a" / "x.avi", root / "a" / "deep" / "y.mkv"]
    for path in videos:
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tiny, path)
    (root / "a" / "notes.txt").write_text("not a video\n")
    (root / ".cache").mkdir()
    shutil.copyfile(tiny, root / ".cache" / "hidden.avi")
    return sorted(videos)


def test_an_unlabelled_folder_is_every_video_under_it(tmp_path, tiny):
    videos = unlabelled_tree(tmp_path / "clips", tiny)
    subsets, class_names = dataset_subsets("videos", tmp_path / "clips")
    assert class_names == [] and list(subsets) == ["all"]
    assert [Path(r.path) for r in subsets["all"]] == videos
    assert {r.label for r in subsets["all"]} == {-1}
    assert len({r.group for r in subsets["all"]}) == len(videos)


def test_an_unlabelled_folder_without_videos_is_one_line_naming_it(tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "sub" / "readme.txt").write_text("no videos here\n")
    with pytest.raises(DatasetError) as error:
        dataset_subsets("videos", tmp_path / "empty")
    message = str(error.value)
    assert str(tmp_path / "empty") in message and ".mp4" in message and "\n" not in message
    with pytest.raises(DatasetError, match="not found"):
        dataset_subsets("videos", tmp_path / "nowhere")


def test_video_files_keeps_files_and_expands_folders(tmp_path, tiny):
    videos = unlabelled_tree(tmp_path / "clips", tiny)
    single = shutil.copyfile(tiny, tmp_path / "z.avi")
    assert video_files([single, tmp_path / "clips", str(videos[0])]) == [
        single,
        *videos,
        videos[0],
    ]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no videos in"):
        video_files([tmp_path / "empty"])


def test_a_missing_video_root_is_named_before_its_annotations(tmp_path):
    with pytest.raises(DatasetError, match=r"HMDB51 videos .* not found: expected .*nowhere"):
        dataset_subsets("hmdb51", tmp_path / "nowhere")
