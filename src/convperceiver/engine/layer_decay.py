"""Optimizer parameter groups with layer-wise learning-rate decay, as BEiT and VideoMAE fine-tune.

Depth ids follow the forward pass: the stem is 0, the CNN's blocks 1..k, then the attention
blocks in order (group g's cross-attention block, then its self-attention blocks), and the head
(`norm`, `fc`) last at L. A parameter at depth d trains at base_lr * layer_decay ** (L - d), so
the blocks nearest the input, which pretraining taught the most general features, move least.
"""

from __future__ import annotations

from typing import Any

from torch import nn

NO_WEIGHT_DECAY = frozenset({"latents", "cls_token"})  # learned queries, not weights


def depth_ids(model: nn.Module) -> tuple[dict[int, int], int]:
    """({id(parameter): depth}, L) for a `ConvPerceiver` or an `R2Plus1DClassifier`.

    Position-independent parameters (latents, the CLS token) share the first attention
    block's depth; a parameter of any other module sits with the head, as in BEiT.
    """
    depth: dict[int, int] = {}
    for parameter in model.backbone.stem.parameters():
        depth[id(parameter)] = 0
    blocks: list[nn.Module] = list(model.backbone.blocks())
    cross_blocks = getattr(model, "cross_blocks", None) or []
    for group, self_layers in enumerate(getattr(model, "self_blocks", None) or []):
        if group < len(cross_blocks):
            blocks.append(cross_blocks[group])
        blocks.extend(self_layers)
    for index, block in enumerate(blocks, start=1):
        for parameter in block.parameters():
            depth[id(parameter)] = index
    first_attention = model.backbone.cnn_blocks + 1
    for name in NO_WEIGHT_DECAY:
        parameter = getattr(model, name, None)
        if isinstance(parameter, nn.Parameter):
            depth[id(parameter)] = first_attention
    return depth, len(blocks) + 1


def parameter_groups(
    model: nn.Module,
    *,
    lr: float,
    cnn_lr: float | None,
    layer_decay: float,
    weight_decay: float,
    decay_everything: bool = False,
) -> list[dict[str, Any]]:
    """Trainable parameters grouped by (part, depth, decayed or not), each with its scaled lr.

    The CNN (`backbone.*`) starts from `cnn_lr or lr`, everything else from `lr`. Biases,
    norms (every 1-D parameter), the latents and the CLS token get no weight decay, as timm's
    `param_groups_layer_decay`, unless `decay_everything` (the seed's Adam decayed them all).
    With `layer_decay=1` every depth shares one group per part. Frozen parameters are left
    out. A pretraining model's `encoder.*` counts as the classifier; its decoder as the head.
    """
    if not 0 < layer_decay <= 1:
        raise ValueError(f"layer_decay={layer_decay} must be in (0, 1]")
    depth, last = depth_ids(getattr(model, "encoder", model))
    groups: dict[tuple[str, int | None, bool], dict[str, Any]] = {}
    for full_name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        name = full_name.removeprefix("encoder.")
        part = "cnn" if name.startswith("backbone.") else "attention"
        level = depth.get(id(parameter), last)
        decayed = decay_everything or (parameter.ndim > 1 and name not in NO_WEIGHT_DECAY)
        key = (part, level if layer_decay < 1 else None, decayed)
        if key not in groups:
            scale = layer_decay ** (last - level)
            base = (cnn_lr or lr) if part == "cnn" else lr
            groups[key] = {
                "params": [],
                "lr": base * scale,
                "lr_scale": scale,
                "weight_decay": weight_decay if decayed else 0.0,
                "name": part
                + (f".depth{level}" if layer_decay < 1 else "")
                + ("" if decayed else ".no_decay"),
            }
        groups[key]["params"].append(parameter)
    # Forward order (the stem first, the head last), the CNN before the attention at equal depth.
    order = sorted(groups, key=lambda key: (groups[key]["lr_scale"], key[0] != "cnn", not key[2]))
    return [groups[key] for key in order]
