"""`data cache`: videos re-encoded once at the training size, read in place of the originals."""

import random
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import tiny_overrides
from data_fixtures import write_tiny

from convperceiver.cli import main
from convperceiver.config import DataConfig, load_config
from convperceiver.data.cache import cache_dataset, read_through_cache, write_cache
from convperceiver.data.datamodule import VideoDataModule
from convperceiver.data.records import VideoRecord
from convperceiver.data.video import decode_clip, probe_video
from convperceiver.errors import ConfigError, DatasetError


def some_records(root: Path, count: int) -> list[VideoRecord]:
    videos = sorted((root / "videos").glob("*/*.avi"))[:count]
    return [VideoRecord(str(v), index, v.stem) for index, v in enumerate(videos)]


def test_cache_command_writes_every_video_once_and_training_reads_it(
    tiny_synthetic_root, tmp_path, capsys
):
    overrides = tiny_overrides(tiny_synthetic_root, tmp_path, "x")
    cache = tmp_path / "cache"
    assert main(["data", "cache", "--out", str(cache), "--workers", "1", *overrides]) == 0
    assert "24 written, 0 already there, 0 skipped" in capsys.readouterr().out
    assert len(list(cache.glob("*/*.avi"))) == 24
    assert main(["data", "cache", "--out", str(cache), *overrides]) == 0
    assert "0 written, 24 already there" in capsys.readouterr().out

    config = load_config(None, [*overrides, f"data.cache={cache}"])
    datamodule = VideoDataModule(config.data, config.eval)
    datamodule.setup()
    splits = datamodule.splits
    assert all(r.path.startswith(str(cache)) for r in splits.train + splits.val + splits.test)
    item = datamodule.train_dataset()[0]
    assert item["clip"].shape == (4, 28, 28, 3) and item["substituted"] == 0


def test_cached_clips_match_the_originals(tiny_synthetic_root, tmp_path):
    records = some_records(tiny_synthetic_root, 3)
    root, size = tiny_synthetic_root / "videos", (32, 32)
    write_cache(records, root=root, cache=tmp_path, size=size, workers=1)
    cached = read_through_cache(records, root=root, cache=tmp_path, size=size)
    rng = random.Random(0)
    for record, copy in zip(records, cached, strict=True):
        assert copy.path != record.path and copy.label == record.label
        duration = probe_video(record.path).duration
        times = sorted(rng.uniform(0, duration) for _ in range(6))
        original = decode_clip(record.path, times, size=size).float()
        from_cache = decode_clip(copy.path, times, size=size).float()
        assert from_cache.shape == original.shape == (6, 32, 32, 3)
        assert (from_cache - original).abs().mean() < 6  # one more lossy encode at 1 Mb/s


def test_a_cache_of_another_size_is_refused(tiny_synthetic_root, tmp_path):
    records, root = some_records(tiny_synthetic_root, 1), tiny_synthetic_root / "videos"
    write_cache(records, root=root, cache=tmp_path, size=(32, 32), workers=1)
    with pytest.raises(DatasetError, match=r"written at \[32, 32\], but data.resize is \[40, 40\]"):
        read_through_cache(records, root=root, cache=tmp_path, size=(40, 40))
    with pytest.raises(DatasetError, match="choose another folder"):
        write_cache(records, root=root, cache=tmp_path, size=(40, 40), workers=1)


def test_broken_videos_are_skipped_and_named(tmp_path):
    (tmp_path / "videos" / "a").mkdir(parents=True)
    broken = tmp_path / "videos" / "a" / "broken.avi"
    broken.write_text("not a video")
    report = write_cache(
        [VideoRecord(str(broken), 0, "x")],
        root=tmp_path / "videos",
        cache=tmp_path / "cache",
        size=(32, 32),
        workers=1,
    )
    assert report.written == 0 and report.skipped[0][0] == str(broken)
    assert not list((tmp_path / "cache").glob("**/*.avi"))


def unlabelled_folder(folder: Path, count: int) -> DataConfig:
    for index in range(count):
        write_tiny(folder / f"part{index % 2}" / f"v{index}.mp4", num_frames=8, codec="libx264")
    return DataConfig(dataset="videos", root=str(folder), resize=[32, 32], cache="")


def test_cache_dataset_resumes_keeping_whole_files_of_the_right_size(tmp_path):
    data = unlabelled_folder(tmp_path / "videos", 3)
    cache = tmp_path / "cache"
    first = cache_dataset(data, out=str(cache), workers=1)
    assert (first.written, first.present, first.skipped) == (3, 0, [])
    cached = sorted(cache.glob("*/*.avi"))
    assert [p.relative_to(cache).as_posix() for p in cached] == [
        "part0/v0.avi",
        "part0/v2.avi",
        "part1/v1.avi",
    ]
    write_tiny(cached[0], num_frames=8, height=16, width=16)  # a copy at another size
    cached[1].write_bytes(cached[1].read_bytes()[:100])  # a file cut short outside the writer
    cached[2].unlink()
    shutil.copyfile(cached[0], f"{cached[2]}.partial.avi")  # an interrupted write
    second = cache_dataset(replace(data, cache=str(cache)), workers=1)
    assert (second.written, second.present) == (3, 0)
    assert all(probe_video(p).height == 32 for p in cached)
    third = cache_dataset(data, out=str(cache), workers=1)
    assert (third.written, third.present) == (0, 3)
    assert third.format_text() == (
        f"cache {cache}: 0 written, 3 already there, 0 skipped; train with data.cache={cache}"
    )


def test_cache_dataset_uses_every_core_by_default(tmp_path, monkeypatch):
    data = unlabelled_folder(tmp_path / "videos", 1)
    pools = []

    class Pool(ProcessPoolExecutor):
        def __init__(self, max_workers: int) -> None:
            pools.append(max_workers)
            super().__init__(max_workers=1)

    monkeypatch.setattr("convperceiver.data.cache.ProcessPoolExecutor", Pool)
    monkeypatch.setattr("os.cpu_count", lambda: 7)
    cache_dataset(data, out=str(tmp_path / "cache"))
    assert pools == [7]


def test_cache_dataset_needs_a_folder(tmp_path):
    data = unlabelled_folder(tmp_path / "videos", 1)
    with pytest.raises(ConfigError, match=r"give --out DIR or set data\.cache"):
        cache_dataset(data)
