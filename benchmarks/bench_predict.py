"""`convperceiver predict` in fp32 against bf16 autocast (`--amp bf16`) on one checkpoint.

Both predictors score the same decoded clips of the given videos (default: the shared real
clips), so only the model's time is compared; decoding is timed once beside it. Also
printed: the largest difference between the two video-level probability vectors, and
whether their top-1 classes agree. The ratio is from one run and never asserted.

    python benchmarks/bench_predict.py --checkpoint CKPT [VIDEO ...] [--repeats 3] [--json]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from bench_cache import SHARED_VIDEOS, real_clips

from convperceiver.engine.predict import VideoPredictor
from convperceiver.engine.train import model_from_checkpoint
from convperceiver.errors import ConvPerceiverError
from convperceiver.profiling.measure import median_seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead")
    args = parser.parse_args(argv)
    videos = args.videos or real_clips()
    if not videos:
        parser.error(f"no videos given and none in {SHARED_VIDEOS}")
    try:
        model, config, class_names = model_from_checkpoint(args.checkpoint)
        predictors = {
            # bf16 casts its model's weights in place, so it gets its own copy.
            name: VideoPredictor.from_config(copy.deepcopy(model), config, class_names, amp=amp)
            for name, amp in (("fp32", None), ("bf16", torch.bfloat16))
        }
        start = time.perf_counter()
        clips = [predictors["fp32"].clips(video) for video in videos]
        decode_s = time.perf_counter() - start
    except ConvPerceiverError as error:
        parser.error(str(error))
    cpu = torch.device("cpu")
    model_s = {
        name: median_seconds(
            lambda p=predictor: [p.logits(c) for c in clips], cpu, warmup=1, repeats=args.repeats
        )
        for name, predictor in predictors.items()
    }
    scores = {name: [p.video_scores(c) for c in clips] for name, p in predictors.items()}
    pairs = list(zip(scores["fp32"], scores["bf16"], strict=True))
    result = {
        "videos": len(videos),
        "clips": sum(len(c) for c in clips),
        "decode_s": decode_s,
        "model_s_fp32": model_s["fp32"],
        "model_s_bf16": model_s["bf16"],
        "speedup": model_s["fp32"] / model_s["bf16"],
        "max_probability_difference": max(float((a - b).abs().max()) for a, b in pairs),
        "top1_agreement": sum(int(a.argmax() == b.argmax()) for a, b in pairs) / len(pairs),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"{result['videos']} videos, {result['clips']} clips: decode {decode_s:.2f} s; model "
        f"fp32 {model_s['fp32']:.2f} s, bf16 {model_s['bf16']:.2f} s (x{result['speedup']:.2f}); "
        f"video probabilities differ by at most {result['max_probability_difference']:.4f}, "
        f"top-1 agreement {result['top1_agreement']:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
