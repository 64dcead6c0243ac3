"""Video decoding, clip sampling, datasets and transforms."""

from convperceiver.data.check import CheckReport, check_dataset, check_records
from convperceiver.data.clip_sampling import random_clip_times, uniform_clip_times
from convperceiver.data.datasets import (
    ClipDataset,
    VideoRecord,
    folder_records,
    hmdb51_records,
    holdout_split,
    list_records,
    ucf101_records,
)
from convperceiver.data.transforms import eval_transform, train_transform
from convperceiver.data.video import (
    VideoInfo,
    decode_all_frames,
    decode_clip,
    probe_video,
    write_video,
)

__all__ = [
    "CheckReport",
    "ClipDataset",
    "VideoInfo",
    "VideoRecord",
    "check_dataset",
    "check_records",
    "decode_all_frames",
    "decode_clip",
    "eval_transform",
    "folder_records",
    "hmdb51_records",
    "holdout_split",
    "list_records",
    "probe_video",
    "random_clip_times",
    "train_transform",
    "ucf101_records",
    "uniform_clip_times",
    "write_video",
]
