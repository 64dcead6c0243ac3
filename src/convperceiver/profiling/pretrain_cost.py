"""`convperceiver benchmark --pretrain`: what a masked-pretraining step costs beside a
classification training step of the same model, at the same clip size and batch.

pretraining: forward, loss, backward and optimizer step of the `MaskedVideoModel` that
             `convperceiver pretrain` builds (the `pretrain` keys), a new tube mask per batch.
training:    the same step of the config's classifier, with cross-entropy.
Both take the config's optimizer and "ours" training settings (fp32 unless --train-amp, the
CNN in channels_last_3d, a fused Adam/AdamW step), and alternate within every repeat.

FLOPs per clip are counted with FlopCounterMode at batch 1, attention in its math form (two
matmuls) as on the meta device: the classifier's step on the meta device, as
`flops.training_flops` does; the pretraining step with real tensors, because gathering the
visible tokens has a data-dependent shape that the meta device cannot compute. The
cross-attention saving is counted too, not derived from shapes: FlopCounterMode's counts per
module of every cross-attention block of the encoder in those two forward passes. A block's
kv projection and attention read the tokens and shrink with them; its query and output
projections and its feed-forward work on the latents and do not.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from convperceiver.config import Config
from convperceiver.models import build_model
from convperceiver.models.attention import CrossAttentionBlock
from convperceiver.models.pretraining import MaskedVideoModel
from convperceiver.models.runtime import set_memory_format
from convperceiver.profiling.execution import Settings, ours_settings
from convperceiver.profiling.measure import (
    PeakMemory,
    cpu_threads,
    device_name,
    keep_freed_heap,
    load_average,
    peak_method,
    resolve_device,
)
from convperceiver.profiling.workloads import (
    Run,
    Workload,
    alternate,
    check_run_counts,
    classification_step,
    optimizer_step,
    synthetic_workload,
)

FlopCounts = dict[str, dict[Any, int]]  # module name -> aten op -> FLOPs
FLOP_METHOD = (
    "FlopCounterMode at batch 1, attention in its math form; per-module counts of the "
    "cross-attention blocks in the forward pass"
)


def step_flops(
    model: nn.Module, inputs: Sequence[Tensor], loss: Callable[[Any], Tensor]
) -> tuple[int, FlopCounts]:
    """FLOPs of one training step, `loss(model(*inputs))` and its backward, on the inputs'
    device (meta counts from shapes alone), and the forward's FLOPs per module.

    The forward is counted apart: FlopCounterMode credits backward ops to the wrong modules.
    """
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as forward:
        value = loss(model(*inputs))
    with FlopCounterMode(display=False) as backward:
        value.backward()
    return forward.get_total_flops() + backward.get_total_flops(), forward.get_flop_counts()


def module_flops(counts: FlopCounts, name: str) -> int:
    """FLOPs counted inside the module `name` (0 where it never ran)."""
    return sum(counts.get(name, {}).values())


def cross_attention_flops(counts: FlopCounts, blocks: Sequence[str]) -> tuple[int, int]:
    """(token-reading, whole-block) forward FLOPs of the cross-attention blocks named `blocks`
    (full names in `counts`): token-reading is each block's attention minus its query and
    output projections, i.e. its kv projection and the attention itself."""

    whole = sum(module_flops(counts, block) for block in blocks)
    reading = sum(
        module_flops(counts, f"{block}.attend")
        - module_flops(counts, f"{block}.attend.to_q")
        - module_flops(counts, f"{block}.attend.to_out")
        for block in blocks
    )
    return reading, whole


def forward_parts(counts: FlopCounts, model: nn.Module) -> dict[str, float]:
    """Forward GFLOPs of a classifier or a `MaskedVideoModel` in parts: the CNN, the rest of
    the encoder (tokens, attention, head), the decoder with its prediction heads, a teacher.

    FlopCounterMode names modules by their path from the root's class, and a module outside
    the root (the teacher) by its own class.
    """

    root = type(model).__name__
    decoder = teacher = 0
    cnn = module_flops(counts, f"{root}.backbone")
    if isinstance(model, MaskedVideoModel):
        cnn = module_flops(counts, f"{root}.encoder.backbone")
        heads = ("decoder", "pixel_head", "teacher_head")
        decoder = sum(module_flops(counts, f"{root}.{name}") for name in heads)
        if model.teacher is not None:
            teacher = module_flops(counts, type(model.teacher).__name__)
    parts = {"cnn": cnn, "decoder": decoder, "teacher": teacher}
    parts["encoder"] = module_flops(counts, "Global") - sum(parts.values())
    return {name: value / 1e9 for name, value in parts.items()}


def _pretraining_step(
    template: MaskedVideoModel, settings: Settings, work: Workload, masks: list[Tensor]
) -> Run:
    """A run of one pretraining step of a copy of `template` on batch i under mask i."""
    model = copy.deepcopy(template).to(work.device).train()
    set_memory_format(model.encoder, channels_last=settings.channels_last)

    def loss(forward: Callable[..., Any], index: int) -> Tensor:
        return forward(settings.input(work.batches[index]), masks[index]).loss

    return optimizer_step(model, device=work.device, settings=settings, optim=work.optim, loss=loss)


def _flops(
    classifier: nn.Module, masked: MaskedVideoModel, clip: Tensor, mask: Tensor
) -> dict[str, Any]:
    """Step GFLOPs per clip of both models, and their cross-attention blocks' forward FLOPs."""
    meta = copy.deepcopy(classifier).to("meta").train()
    label = torch.zeros(1, dtype=torch.long, device="meta")
    meta_clip = torch.zeros(clip.shape, device="meta")
    train, train_counts = step_flops(
        meta, [meta_clip], lambda logits: F.cross_entropy(logits, label)
    )
    counted = copy.deepcopy(masked).to(clip.device).train()
    pretrain, pretrain_counts = step_flops(counted, [clip, mask], lambda output: output.loss)
    masked_name, classifier_name = type(masked).__name__, type(classifier).__name__
    result: dict[str, Any] = {
        "pretrain": pretrain / 1e9,
        "train": train / 1e9,
        "pretrain_parts": forward_parts(pretrain_counts, masked),
        "train_parts": forward_parts(train_counts, classifier),
        "cross": None,
    }
    blocks = [n for n, m in classifier.named_modules() if isinstance(m, CrossAttentionBlock)]
    if blocks:
        # FlopCounterMode names modules after the root's class: "ConvPerceiver.cross_blocks.0".
        visible = cross_attention_flops(
            pretrain_counts, [f"{masked_name}.encoder.{b}" for b in blocks]
        )
        every = cross_attention_flops(train_counts, [f"{classifier_name}.{b}" for b in blocks])
        result["cross"] = {
            "blocks": len(blocks),
            "token_gflops_visible": visible[0] / 1e9,
            "token_gflops_all": every[0] / 1e9,
            "token_flop_ratio": visible[0] / every[0],
            "block_gflops_visible": visible[1] / 1e9,
            "block_gflops_all": every[1] / 1e9,
            "block_flop_ratio": visible[1] / every[1],
        }
    return result


def pretrain_cost(
    config: Config,
    *,
    batch_size: int | None = None,
    repeats: int = 5,
    warmup: int = 2,
    device: str = "auto",
    train_amp: bool = False,
    channels_last: bool = True,
    threads: int | None = None,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """Time a pretraining step against a training step of the config's model, and count both.

    batch_size defaults to 8 on CPU and 32 on CUDA; `warmup` untimed steps of each (at least
    one: the first measures peak memory) come before `repeats` timed ones, taking turns.
    Both run eager, as `convperceiver pretrain` does: the masked model's gathers of visible
    tokens have data-dependent shapes, on which torch.compile breaks its graphs.
    """
    from convperceiver.data.datamodule import dataset_num_classes
    from convperceiver.engine.pretrain import build_pretraining_module

    target = resolve_device(device)
    batch_size = batch_size or (32 if target.type == "cuda" else 8)
    check_run_counts(batch_size=batch_size, repeats=repeats, warmup=warmup, threads=threads)
    # The comparison's classifier needs a head; an unlabelled set gets one of a single class.
    num_classes = num_classes or max(1, dataset_num_classes(config.data))
    weights = "none" if config.model.weights == "kinetics400" else config.model.weights
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, weights=weights))
    settings, _ = ours_settings(
        target, amp="off", train_amp=train_amp, channels_last=channels_last, compile=False
    )
    torch.manual_seed(0)
    classifier = build_model(config.model, num_classes=num_classes)
    torch.manual_seed(0)
    masked = build_pretraining_module(config, None).model  # with its teacher, if any
    work = synthetic_workload(
        config,
        device=target,
        batch_size=batch_size,
        num_classes=num_classes,
        train=settings,
        infer=settings,
        warmup=warmup,
        repeats=repeats,
        stock=False,
    )
    generator = torch.Generator().manual_seed(1)
    masks = [masked.random_mask(batch, generator=generator) for batch in work.batches]
    # One allocator regime for both steps, as the benchmark has (`keep_freed_heap`).
    allocator = "glibc, freed heap kept for reuse" if keep_freed_heap() else "default"
    with cpu_threads(threads):
        load_before = load_average()
        makers = {
            "pretrain": lambda: _pretraining_step(masked, settings, work, masks),
            "train": lambda: classification_step(classifier, settings, work),
        }
        runs: dict[str, Run] = {}
        peaks: dict[str, float | None] = {}
        for name, make in makers.items():
            with PeakMemory(target) as peak:
                runs[name] = make()
                runs[name](0)  # gradients, optimizer state and activations are allocated here
            peaks[name] = peak.megabytes
        step = alternate(runs, device=target, warmup=warmup, repeats=repeats, done=1)
        flops = _flops(classifier, masked, work.batches[0][:1], masks[0][:1])
        load_after, used_threads = load_average(), torch.get_num_threads()
    grid = masked.grid(work.batches[0])
    tokens = math.prod(grid)
    visible = tokens - int(masks[0][0].sum())
    data = config.data
    models = {
        name: {
            "ms_per_clip": 1000 * step[name] / batch_size,
            "clips_per_s": batch_size / step[name],
            "step_gflops": flops[name],
            "forward_gflops": flops[f"{name}_parts"],
            "peak_memory_mb": peaks[name],
        }
        for name in ("pretrain", "train")
    }
    return {
        "device": target.type,
        "settings": {
            "device_name": device_name(target),
            "cpu_cores": os.cpu_count(),
            "threads": used_threads,
            "torch": torch.__version__,
            "clip": [3, data.num_frames, data.crop_size, data.crop_size],
            "batch_size": batch_size,
            "warmup": warmup,
            "repeats": repeats,
            "steps": settings.describe(),
            "optimizer": config.optim.optimizer,
            "arch": config.model.arch,
            "weights": "random init (speed does not depend on the weights' values)"
            if weights == "none"
            else weights,
            "flops": FLOP_METHOD,
            "peak_memory": peak_method(target),
            "allocator": allocator,
            "load_average": {"before": load_before, "after": load_after},
        },
        "mask": {
            "ratio": masked.mask_ratio,
            "grid": list(grid),
            "tokens": tokens,
            "visible_tokens": visible,
            "visible_fraction": visible / tokens,
        },
        **models,
        "ratio": {
            "time": step["pretrain"] / step["train"],
            "gflops": flops["pretrain"] / flops["train"],
        },
        "cross_attention": flops["cross"],
    }


def format_pretrain_cost(result: dict[str, Any]) -> str:
    """The run's conditions, the two steps side by side, then the cross-attention's saving."""
    s, mask = result["settings"], result["mask"]
    load, steps = s["load_average"], s["steps"]
    amp = "" if steps["dtype"] == "float32" else f"{steps['dtype']}, "
    fused = "" if s["optimizer"] == "sgd" else f" ({steps['optimizer']})"
    lines = [
        f"device: {result['device']} ({s['device_name']}), {s['threads']} threads, "
        f"{s['cpu_cores']} cores, torch {s['torch']}",
        f"clip {'x'.join(map(str, s['clip']))}, batch {s['batch_size']}, {s['warmup']} warm-up "
        f"+ {s['repeats']} timed steps of each, alternating (median); load average "
        f"{load['before']} -> {load['after']}",
        f"steps: {s['arch']}, {amp}{steps['memory_format']}, {s['optimizer']}{fused}; "
        f"weights: {s['weights']}",
        f"mask: ratio {mask['ratio']} as tubes on the {'x'.join(map(str, mask['grid']))} token "
        f"grid: {mask['visible_tokens']} of {mask['tokens']} tokens visible "
        f"({mask['visible_fraction']:.1%})",
        "",
    ]

    def peak(name: str) -> str:
        value = result[name]["peak_memory_mb"]
        return "n/a" if value is None else f"{value:.0f}"

    def cells(key: str, digits: int) -> list[str]:
        return [f"{result[name][key]:.{digits}f}" for name in ("pretrain", "train")]

    def parts(key: str) -> list[str]:
        return [f"{result[name]['forward_gflops'][key]:.3f}" for name in ("pretrain", "train")]

    ratio = result["ratio"]
    table = [
        ["", "pretraining", "training", "pretrain/train"],
        ["ms / clip", *cells("ms_per_clip", 2), f"{ratio['time']:.2f}"],
        ["clips/s", *cells("clips_per_s", 2), ""],
        ["step GFLOPs / clip", *cells("step_gflops", 3), f"{ratio['gflops']:.2f}"],
        ["forward GFLOPs: CNN", *parts("cnn"), ""],
        ["  rest of the encoder", *parts("encoder"), ""],
        ["  decoder", *parts("decoder"), ""],
        ["  teacher", *parts("teacher"), ""],
        ["peak MB", peak("pretrain"), peak("train"), ""],
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table
    ]
    cross = result["cross_attention"]
    if cross is None:
        lines.append("cross-attention: none (the baseline's decoder reads the visible tokens)")
        return "\n".join(lines)
    lines += [
        f"cross-attention reads {mask['visible_fraction']:.0%} of the tokens: "
        f"{cross['token_flop_ratio']:.2f}x its full-token FLOPs (kv projection and attention, "
        f"{cross['token_gflops_visible']:.4f} vs {cross['token_gflops_all']:.4f} GFLOPs a "
        "forward, counted per module)",
        f"whole cross-attention blocks, with the latents' projections and feed-forward: "
        f"{cross['block_flop_ratio']:.2f}x ({cross['block_gflops_visible']:.4f} vs "
        f"{cross['block_gflops_all']:.4f} GFLOPs)",
    ]
    return "\n".join(lines)
