import random
from pathlib import Path

import pytest
from test_train import tiny_overrides

from convperceiver.cli import main
from convperceiver.config import load_config
from convperceiver.data.cache import read_through_cache, write_cache
from convperceiver.data.datamodule import VideoDataModule, ensure_synthetic
from convperceiver.data.datasets import VideoRecord
from convperceiver.data.video import decode_clip, probe_video
from convperceiver.errors import DatasetError


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache-data") / "set"
    ensure_synthetic(load_config(None, tiny_overrides(root, root.parent, "unused")).data)
    return root


def some_records(synthetic_root: Path, count: int) -> list[VideoRecord]:
    videos = sorted((synthetic_root / "videos").glob("*/*.avi"))[:count]
    return [VideoRecord(str(v), index, v.stem) for index, v in enumerate(videos)]


def test_cache_command_writes_every_video_once_and_training_reads_it(
    synthetic_root, tmp_path, capsys
):
    overrides = tiny_overrides(synthetic_root, tmp_path, "x")
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


def test_cached_clips_match_the_originals(synthetic_root, tmp_path):
    records = some_records(synthetic_root, 3)
    root, size = synthetic_root / "videos", (32, 32)
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


def test_a_cache_of_another_size_is_refused(synthetic_root, tmp_path):
    records, root = some_records(synthetic_root, 1), synthetic_root / "videos"
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
