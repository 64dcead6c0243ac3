"""Forward time and peak memory of the attention module against the number of CNN tokens.

Clips of 8 to 128 frames at 112x112 (inference, batch 1 unless --batch-size says otherwise;
times are per clip), k = 4 / 6 / 8 CNN blocks, the seed's
attention hyper-parameters, two variants: `cross` (1 cross + 1 self: N = 256 latents of
D = 512 read the M tokens) and `self-only` (cross_blocks=0, self_blocks=1: the M tokens attend
to each other at the CNN's width). The truncated CNN and the attention module (tokens,
attention, head) are timed apart on the same features, so the attention's share of the
forward is read directly rather than as the difference of two noisy totals.

Peak memory is the growth while the attention module runs (peak RSS on CPU, max allocated
on CUDA), beside what its score matrix (heads x queries x M, fp32) would take if it were
stored: the fused SDPA kernel never stores it, so memory grows linearly with M. A size whose
forward is predicted (its FLOPs over the rate of the previous size of its series) to take
more than --budget seconds is skipped and listed. Last, the self-attention-only variant at
k = 4 runs one 64-frame clip (25,088 tokens), which must fit in 24 GiB.

    python benchmarks/bench_attention_scaling.py [--frames 8 16 ...] [--blocks 4 6 8]
        [--budget 20] [--repeats 2] [--device auto] [--threads N] [--bf16] [--channels-first]
        [--batch-size 1] [--json]

Models run as `convperceiver benchmark` runs "ours": the CNN in channels_last_3d, and with
--bf16, bf16 autocast with the weights it casts cast once.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from convperceiver.config import ModelConfig
from convperceiver.models import build_model
from convperceiver.models.backbone import output_grid
from convperceiver.profiling.execution import Settings
from convperceiver.profiling.flops import forward_flops
from convperceiver.profiling.measure import (
    PeakMemory,
    device_name,
    keep_freed_heap,
    load_average,
    median_seconds,
    peak_method,
    resolve_device,
)

SIZE = 112
NUM_CLASSES = 51
VARIANTS = {
    "cross": {"cross_blocks": 1, "self_blocks": 1},
    "self-only": {"cross_blocks": 0, "self_blocks": 1},
}
TARGET_GIB = 24
CHECK = {"blocks": 4, "variant": "self-only", "frames": 64}


def build(blocks: int, variant: str) -> nn.Module:
    torch.manual_seed(0)
    config = ModelConfig(cnn_blocks=blocks, weights="none", **VARIANTS[variant])
    return build_model(config, num_classes=NUM_CLASSES).eval()


def score_matrix_mb(model: nn.Module, tokens: int) -> float:
    """MB of the fp32 attention scores one attention layer would hold if it stored them."""
    if model.self_only:
        layer = model.self_blocks[0][0].attend
        return layer.heads * (tokens + 1) ** 2 * 4 / 2**20  # the CLS token joins the M tokens
    layer = model.cross_blocks[0].attend
    return layer.heads * model.latents.shape[0] * tokens * 4 / 2**20


def predicted_flops(model: nn.Module, frames: int) -> int:
    """Forward FLOPs of one clip, counted from shapes on the meta device (no arithmetic)."""
    clip = torch.zeros(1, 3, frames, SIZE, SIZE, device="meta")
    return forward_flops(copy.deepcopy(model).to("meta"), clip)[0]


def without_cnn(model: nn.Module) -> nn.Module:
    """The attention module and head alone: a shallow copy sharing every weight, whose CNN
    passes the features it is given through."""
    attention = copy.copy(model)
    attention._modules = {**model._modules, "backbone": nn.Identity()}
    return attention


def measure(
    model: nn.Module,
    frames: int,
    *,
    device: torch.device,
    repeats: int,
    settings: Settings,
    batch: int = 1,
) -> dict[str, Any]:
    """CNN and attention milliseconds per clip and peak MB of one forward of a
    (batch, 3, frames, 112, 112) batch, `model` prepared by `settings`."""
    cnn, attention = model.backbone, without_cnn(model)
    clip = settings.input(torch.randn(batch, 3, frames, SIZE, SIZE, device=device))
    with torch.inference_mode(), settings.autocast(device):
        with PeakMemory(device) as cnn_peak:
            features = cnn(clip)  # also the CNN's warm-up
        cnn_s = median_seconds(lambda: cnn(clip), device, warmup=0, repeats=repeats)
        with PeakMemory(device) as attention_peak:
            attention(features)  # also the attention's warm-up
        attention_s = median_seconds(lambda: attention(features), device, warmup=0, repeats=repeats)
    tokens = int(features.shape[2:].numel())
    return {
        "batch": batch,
        "tokens": tokens,
        "cnn_ms": 1000 * cnn_s / batch,
        "attention_ms": 1000 * attention_s / batch,
        "attention_share_of_cnn": attention_s / cnn_s,
        "cnn_peak_mb": cnn_peak.megabytes,
        "attention_peak_mb": attention_peak.megabytes,
        "score_matrix_mb": batch * score_matrix_mb(model, tokens),
    }


def run_series(
    blocks: int, variant: str, frames: Sequence[int], args: argparse.Namespace
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Measured rows and skipped sizes of one (k, variant) series, smallest clip first."""
    template = build(blocks, variant)
    model = args.settings.prepare(template, args.device, train=False)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for count in sorted(frames):
        flops = predicted_flops(template, count)
        base = {"blocks": blocks, "variant": variant, "frames": count, "gflops": flops / 1e9}
        if rows:  # the previous size's rate, scaled to this size's FLOPs
            last = rows[-1]
            rate = last["gflops"] / ((last["cnn_ms"] + last["attention_ms"]) / 1000)
            predicted_s = args.batch_size * flops / 1e9 / rate  # one batch's forward
            if predicted_s > args.budget:
                tokens = int(torch.Size(output_grid(blocks, count, SIZE, SIZE)).numel())
                skipped.append({**base, "tokens": tokens, "predicted_s": predicted_s})
                continue
        row = {**base, **measure(model, count, repeats=args.repeats, **args.run)}
        rows.append(row)
        print(format_row(row), flush=True)
    return rows, skipped


def check_long_clip(args: argparse.Namespace, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The self-attention-only variant at k = 4 on one 64-frame 112x112 clip."""
    done = [r for r in rows if all(r[key] == value for key, value in CHECK.items())]
    if done:
        row = done[0]
    else:
        model = build(CHECK["blocks"], CHECK["variant"])
        model = args.settings.prepare(model, args.device, train=False)
        run = {**args.run, "batch": 1}
        row = {**CHECK, **measure(model, CHECK["frames"], repeats=1, **run)}
    # An upper bound: the CNN's peak, plus the attention's growth over the features it kept.
    peaks = [row["cnn_peak_mb"], row["attention_peak_mb"]]
    peak = None if None in peaks else sum(peaks)
    return {**row, "peak_mb": peak, "fits": peak is not None and peak < TARGET_GIB * 1024}


def format_row(row: dict[str, Any]) -> str:
    def mb(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.0f}"

    per_token = row["attention_peak_mb"]
    tokens = row["tokens"] * row["batch"]
    per_token = "n/a" if per_token is None else f"{1024 * per_token / tokens:.1f}"
    return (
        f"k={row['blocks']} {row['variant']:<9} {row['frames']:>3} frames "
        f"{row['tokens']:>6} tokens  "
        f"CNN {row['cnn_ms']:>8.0f} ms  attention {row['attention_ms']:>7.0f} ms "
        f"({row['attention_share_of_cnn']:>6.1%} of CNN)  peak MB CNN {mb(row['cnn_peak_mb'])}, "
        f"attention {mb(row['attention_peak_mb'])} ({per_token} kB/token; "
        f"scores if stored {row['score_matrix_mb']:.0f})"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    parser.add_argument("--blocks", type=int, nargs="+", default=[4, 6, 8], help="k")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per forward")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after one warm-up")
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (default fp32)")
    parser.add_argument(
        "--channels-first", action="store_true", help="the CNN channels-first (default last)"
    )
    parser.add_argument("--batch-size", type=int, default=1, help="clips per forward")
    parser.add_argument("--no-check", action="store_true", help="skip the 64-frame check")
    parser.add_argument("--json", action="store_true", help="also print one JSON object")
    args = parser.parse_args(argv)
    args.device = resolve_device(args.device)
    args.settings = Settings(
        amp=torch.bfloat16 if args.bf16 else None, channels_last=not args.channels_first
    )
    args.run = {"device": args.device, "settings": args.settings, "batch": args.batch_size}
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = load_average()
    keep_freed_heap()  # one allocator regime for every size; see its docstring
    print(
        f"device {args.device.type} ({device_name(args.device)}), {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}, {args.settings.describe()['dtype']}, "
        f"CNN {args.settings.describe()['memory_format']}, "
        f"batch {args.batch_size}, times per clip, {args.repeats} timed runs after 1 warm-up "
        f"(median); "
        f"peak memory: {peak_method(args.device)}"
    )
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for blocks in args.blocks:
        for variant in args.variants:
            measured, missed = run_series(blocks, variant, args.frames, args)
            rows += measured
            skipped += missed
    for row in skipped:
        print(
            f"skipped: k={row['blocks']} {row['variant']} {row['frames']} frames "
            f"({row['tokens']} tokens, {row['gflops']:.0f} GFLOPs): predicted "
            f"{row['predicted_s']:.0f} s > --budget {args.budget:.0f} s"
        )
    check = None
    if not args.no_check:
        check = check_long_clip(args, rows)
        peak = "n/a" if check["peak_mb"] is None else f"{check['peak_mb'] / 1024:.2f} GiB"
        print(
            f"check: self-only k=4 on a 64x112x112 clip ({check['tokens']} tokens) ran in "
            f"{(check['cnn_ms'] + check['attention_ms']) / 1000:.1f} s, peak <= {peak} "
            f"({'fits' if check['fits'] else 'does NOT fit'} in {TARGET_GIB} GiB; scores if "
            f"stored: {check['score_matrix_mb'] / 1024:.1f} GiB)"
        )
    print(f"load average before {load_before}, after {load_average()}")
    if args.json:
        print(json.dumps({"rows": rows, "skipped": skipped, "check": check}, indent=2))
    return 0 if check is None or check["fits"] else 1


if __name__ == "__main__":
    sys.exit(main())
