"""Datasets and loaders built from the `data` and `eval` config sections.

Layouts are those of `layouts.dataset_subsets`. Validation is the layout's own val part
where it has one; otherwise the test split (`val_protocol: test`, the seed's protocol) or
training videos held out grouped by source, so no film or group straddles the line
(`val_protocol: holdout`, the default). A layout with no test part holds one out the same way.

Loaders carry uint8 clips (B, T, crop, crop, 3); the model normalises them on its device
(`transforms.normalize_clips`). Workers hand batches over through shared-memory slots
allocated once (`batch_slots`). Evaluation batches leave out views that failed to decode
(`collate_eval`) and say how many in `dropped`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

from convperceiver.config import DataConfig, EvalConfig
from convperceiver.data.batch_slots import (
    SPARE_SLOTS,
    BatchSlots,
    allocate_slots,
    collate_clips,
)
from convperceiver.data.cache import read_through_cache
from convperceiver.data.datasets import EvalClipDataset, TrainClipDataset
from convperceiver.data.eval_clips import eval_clip_spec
from convperceiver.data.layouts import dataset_subsets, video_root
from convperceiver.data.records import VideoRecord, holdout_split
from convperceiver.data.subsets import label_fraction_subset, select_classes
from convperceiver.data.synthetic import ensure_synthetic
from convperceiver.data.transforms import train_transform
from convperceiver.data.video import gpu_decoding

log = logging.getLogger(__name__)

KNOWN_CLASS_COUNTS = {"hmdb51": 51, "ucf101": 101}
TEST_FRACTION = 0.2  # held out as test from a layout that has no test part
# Batches each worker keeps ready; uint8 clips are small enough to queue more than torch's 2.
PREFETCH_FACTOR = 4


@dataclass
class Splits:
    train: list[VideoRecord]
    val: list[VideoRecord]
    test: list[VideoRecord]
    class_names: list[str]
    val_source: str  # where the validation videos come from, for logs and reports


def build_splits(data: DataConfig, *, seed: int) -> Splits:
    """Train, validation and test records for a config, following its protocol.

    `data.classes` keeps a subset of the classes (relabelled in the order given) everywhere;
    `data.label_fraction` then thins the training videos only, per class and by seed, so
    validation and test are the same whatever the fraction.
    """
    subsets, class_names = dataset_subsets(data.dataset, data.root, data.annotations, data.split)
    if data.classes is not None:
        subsets = {
            part: select_classes(records, class_names, data.classes)[0]
            for part, records in subsets.items()
        }
        class_names = list(data.classes)
    if "all" in subsets and not class_names:
        # Unlabelled videos are for pretraining, which needs no test set.
        train, test = subsets["all"], []
    elif "all" in subsets:
        train, test = holdout_split(subsets["all"], fraction=TEST_FRACTION, seed=seed)
        log.info("%s has no test part: %d videos held out as test", data.root, len(test))
    else:
        train, test = subsets["train"], subsets["test"]
    if "val" in subsets:
        val = subsets["val"]
        source = f"the dataset's own val part ({len(val)})"
    elif data.val_protocol == "test" and test:
        val, source = test, "the test split (the seed's protocol: model selection on test videos)"
    else:
        train, val = holdout_split(train, fraction=data.val_fraction, seed=seed)
        source = f"{len(val)} training videos held out, grouped by source"
    if data.label_fraction < 1:
        kept = label_fraction_subset(train, fraction=data.label_fraction, seed=seed)
        log.info(
            "data.label_fraction=%g: %d of %d training videos",
            data.label_fraction,
            len(kept),
            len(train),
        )
        train = kept
    return Splits(train, val, test, class_names, source)


def dataset_num_classes(data: DataConfig) -> int:
    """The class count a config's dataset has, reading annotations only where it must; 0 for
    unlabelled videos."""
    if data.classes is not None:
        return len(data.classes)
    if data.dataset == "videos":
        return 0
    if data.dataset == "synthetic":
        return data.synthetic.classes
    if data.dataset in KNOWN_CLASS_COUNTS:
        return KNOWN_CLASS_COUNTS[data.dataset]
    return len(dataset_subsets(data.dataset, data.root, data.annotations, data.split)[1])


class VideoDataModule(pl.LightningDataModule):
    """Random training clips, and every view of every clip of every validation and test video.

    `spec` is the evaluation clip resolved from the config, the one predict and explain use.
    """

    def __init__(self, data: DataConfig, evaluation: EvalConfig, *, seed: int = 0) -> None:
        super().__init__()
        self.data = data
        self.evaluation = evaluation
        self.seed = seed
        self.spec = eval_clip_spec(data, evaluation)
        self.splits: Splits | None = None
        self._train_set: TrainClipDataset | None = None
        self._epoch = 0

    def prepare_data(self) -> None:
        ensure_synthetic(self.data)

    def setup(self, stage: str | None = None) -> None:
        if self.splits is not None:
            return
        self.splits = build_splits(self.data, seed=self.seed)
        if self.data.cache:
            self.splits = self._through_cache(self.splits)
        log.info(
            "%s: %d classes, %d train / %d val / %d test videos; validation on %s",
            self.data.dataset,
            len(self.splits.class_names),
            len(self.splits.train),
            len(self.splits.val),
            len(self.splits.test),
            self.splits.val_source,
        )

    def _through_cache(self, splits: Splits) -> Splits:
        def read(records: list[VideoRecord]) -> list[VideoRecord]:
            return read_through_cache(
                records,
                root=video_root(self.data.dataset, self.data.root),
                cache=self.data.cache,
                size=self._size(),
            )

        return replace(
            splits, train=read(splits.train), val=read(splits.val), test=read(splits.test)
        )

    @property
    def class_names(self) -> list[str]:
        self.setup()
        return self.splits.class_names

    def _size(self) -> tuple[int, int]:
        return tuple(self.data.resize)

    def set_epoch(self, epoch: int) -> None:
        """The epoch training clips are drawn for; workers, persistent ones too, see it at once.

        Call it at each training epoch's start (the LightningModule's `on_train_epoch_start`).
        """
        self._epoch = epoch
        if self._train_set is not None:
            self._train_set.set_epoch(epoch)

    def train_dataset(self) -> TrainClipDataset:
        self.setup()
        data = self.data
        dataset = TrainClipDataset(
            self.splits.train,
            num_frames=data.num_frames,
            clip_duration=data.clip_duration,
            size=self._size(),
            transform=train_transform(
                crop_size=data.crop_size, horizontal_flip=data.horizontal_flip
            ),
            seed=self.seed,
            class_names=self.splits.class_names,
            decoder=data.decoder,
        )
        dataset.set_epoch(self._epoch)
        return dataset

    def eval_dataset(self, records: list[VideoRecord]) -> EvalClipDataset:
        self.setup()
        return EvalClipDataset(records, spec=self.spec, class_names=self.splits.class_names)

    def _loader(
        self,
        dataset: Dataset,
        *,
        shuffle: bool,
        item_shape: Sequence[int],
        collate: Callable[..., dict[str, Any]] = collate_clips,
    ) -> DataLoader:
        # CUDA cannot start in a forked worker: frames decoded on the GPU are decoded in the
        # main process, and are on the device already, so nothing is pinned.
        on_gpu = self.data.decoder == "torchcodec-cuda" and gpu_decoding()
        return clip_loader(
            dataset,
            batch_size=self.data.batch_size,
            num_workers=0 if on_gpu else self.data.num_workers,
            shuffle=shuffle,
            item_shape=item_shape,
            collate=collate,
            pin_memory=not on_gpu,
        )

    def _eval_loader(self, records: list[VideoRecord]) -> DataLoader:
        shape = self.spec.view_shape
        collate = partial(collate_eval, view_shape=shape)
        return self._loader(
            self.eval_dataset(records), shuffle=False, item_shape=shape, collate=collate
        )

    def train_dataloader(self) -> DataLoader:
        self._train_set = self.train_dataset()
        data = self.data
        shape = (data.num_frames, data.crop_size, data.crop_size, 3)
        return self._loader(self._train_set, shuffle=True, item_shape=shape)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits.val)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.splits.test)


def clip_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int,
    shuffle: bool,
    item_shape: Sequence[int] | None = None,
    collate: Callable[..., dict[str, Any]] = collate_clips,
    pin_memory: bool = True,
) -> DataLoader:
    """The DataLoader every clip set is read through: training's, evaluation's, the benchmark's.

    `collate(items, slots=...)` batches dict items with a "clip"; given the clips' `item_shape`,
    workers stack them into shared-memory slots allocated here, once (`batch_slots`).
    Persistent workers keep each worker's open state (durations probed, broken files known)
    across epochs; memory is pinned where CUDA is there, so copies to the GPU can overlap.
    """
    slots = None
    if num_workers > 0 and item_shape is not None:
        slots = allocate_slots(
            workers=num_workers,
            slots_per_worker=PREFETCH_FACTOR + SPARE_SLOTS,
            batch_size=batch_size,
            item_shape=item_shape,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        collate_fn=partial(collate, slots=slots),
        pin_memory=pin_memory and torch.cuda.is_available(),
        persistent_workers=num_workers > 0,
        prefetch_factor=PREFETCH_FACTOR if num_workers > 0 else None,
        drop_last=shuffle and len(dataset) > batch_size,
    )


def collate_eval(
    items: Sequence[dict[str, Any] | None],
    *,
    view_shape: Sequence[int],
    slots: BatchSlots | None = None,
) -> dict[str, Any]:
    """Batch the evaluation items that decoded; `dropped` counts the Nones left out.

    A batch where every item was dropped keeps every key, as empty tensors: `clip` is
    (0, *view_shape) uint8.
    """
    kept = [item for item in items if item is not None]
    if kept:
        batch = collate_clips(kept, slots)
    else:
        empty = torch.empty(0, dtype=torch.int64)
        batch = {
            "clip": torch.empty((0, *view_shape), dtype=torch.uint8),
            "label": empty,
            "video_index": empty.clone(),
            "view_index": empty.clone(),
        }
    batch["dropped"] = len(items) - len(kept)
    return batch
