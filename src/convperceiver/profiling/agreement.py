"""Top-1 agreement of our inference settings with stock fp32 on a trained model's held-out clips.

With random weights the logits of a clip are nearly tied and most clips share one or two
top-1 classes, so agreement measured there says little; a trained checkpoint and its test
split show what bf16 autocast and channels_last_3d change in the predictions that matter.
"""

from __future__ import annotations

from typing import Any

import torch

from convperceiver.data.datamodule import VideoDataModule
from convperceiver.data.transforms import normalize_clips
from convperceiver.models import FreezableClassifier
from convperceiver.profiling.execution import STOCK, Settings


def held_out_agreement(
    model: FreezableClassifier,
    datamodule: VideoDataModule,
    *,
    settings: Settings,
    device: torch.device,
    max_clips: int | None = None,
) -> dict[str, Any]:
    """Clip-level top-1 of stock fp32 and of `settings` on a trained model's test clips.

    Every test view (the evaluation clips and crops of every test video) is scored, or the
    first `max_clips`; views that failed to decode are left out by the loader. Clips are
    normalised on `device` as in training and prediction.
    """
    stock = STOCK.prepare(model, device, train=False)
    ours = settings.prepare(model, device, train=False)
    mean, std = datamodule.data.mean, datamodule.data.std
    agree = stock_right = ours_right = clips = 0
    with torch.inference_mode():
        for batch in datamodule.test_dataloader():
            take = len(batch["label"]) if max_clips is None else max_clips - clips
            pixels, label = batch["clip"][:take].to(device), batch["label"][:take].to(device)
            if len(pixels) == 0:
                continue
            clip = normalize_clips(pixels, mean, std)
            reference = stock(STOCK.input(clip)).argmax(-1)
            with settings.autocast(device):
                predicted = ours(settings.input(clip)).argmax(-1)
            agree += int((reference == predicted).sum())
            stock_right += int((reference == label).sum())
            ours_right += int((predicted == label).sum())
            clips += len(clip)
            if max_clips is not None and clips >= max_clips:
                break
    if clips == 0:
        raise ValueError("the test split gave no clip to compare on")
    return {
        "settings": settings.describe(),
        "clips": clips,
        "top1_agreement": agree / clips,
        "stock_clip_top1": stock_right / clips,
        "ours_clip_top1": ours_right / clips,
    }
