"""Video decoding, clip sampling, datasets and transforms."""

from convperceiver.data.check import CheckReport, check_dataset, check_records
from convperceiver.data.clip_sampling import random_clip_times, uniform_clip_times
from convperceiver.data.datasets import (
    EvalClipDataset,
    TrainClipDataset,
    VideoRecord,
    folder_records,
    hmdb51_records,
    holdout_split,
    list_records,
    ucf101_records,
)
from convperceiver.data.eval_clips import (
    EvalClipSpec,
    decode_views,
    eval_clip_spec,
    middle_clip,
    synthetic_clip,
)
from convperceiver.data.transforms import (
    ClipNormalizer,
    eval_transform,
    normalize_clips,
    train_transform,
)
from convperceiver.data.video import (
    VideoInfo,
    decode_all_frames,
    decode_clip,
    probe_video,
    write_video,
)

__all__ = [
    "CheckReport",
    "ClipNormalizer",
    "EvalClipDataset",
    "EvalClipSpec",
    "TrainClipDataset",
    "VideoInfo",
    "VideoRecord",
    "check_dataset",
    "check_records",
    "decode_all_frames",
    "decode_clip",
    "decode_views",
    "eval_clip_spec",
    "eval_transform",
    "folder_records",
    "hmdb51_records",
    "holdout_split",
    "list_records",
    "middle_clip",
    "normalize_clips",
    "probe_video",
    "random_clip_times",
    "synthetic_clip",
    "train_transform",
    "ucf101_records",
    "uniform_clip_times",
    "write_video",
]
