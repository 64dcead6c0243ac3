"""`convperceiver explain`: its arguments beside its handler."""

from __future__ import annotations

import argparse
from pathlib import Path

from convperceiver.arguments import (
    CHECKPOINT_CONFIG,
    Subcommands,
    add_config_arguments,
    set_handler,
    split_videos_and_overrides,
)
from convperceiver.errors import ConfigError


def cmd_explain(args: argparse.Namespace) -> int:
    from convperceiver.engine.train import model_from_checkpoint
    from convperceiver.explain.explain import explain_video

    videos, overrides = split_videos_and_overrides(args.inputs, command="explain")
    if len(videos) > 1:
        raise ConfigError(f"explain: one VIDEO at a time, got {len(videos)}: {' '.join(videos)}")
    video = Path(videos[0])
    model, config, class_names = model_from_checkpoint(args.checkpoint, overrides, args.config)
    result = explain_video(
        model,
        config,
        class_names,
        video,
        out=args.out,
        class_name=args.class_name,
        latents=args.latents,
    )
    top = ", ".join(f"{label} {p:.3f}" for label, p in result.top)
    explained = f" for {result.class_name}" if result.class_name else ""
    print(f"{video}: {result.method}{explained}; top-5 of the clip: {top}")
    for path in result.paths:
        print(f"wrote {path}")
    return 0


def add_parser(commands: Subcommands) -> None:
    explain = commands.add_parser(
        "explain", help="attention or Grad-CAM heat maps on the middle clip of a video"
    )
    explain.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT")
    add_config_arguments(explain, overrides=False, base=CHECKPOINT_CONFIG)
    explain.add_argument(
        "inputs", nargs="+", metavar="VIDEO|key=value", help="one video, then config overrides"
    )
    explain.add_argument(
        "--out", type=Path, default=Path("explain"), help="folder for the GIF and the PNG"
    )
    explain.add_argument(
        "--class",
        dest="class_name",
        default=None,
        metavar="NAME",
        help="the class Grad-CAM explains (default: the predicted one)",
    )
    explain.add_argument(
        "--latents",
        type=int,
        default=0,
        metavar="K",
        help="also draw the K most peaked latents one by one (cross-attention only)",
    )
    set_handler(explain, cmd_explain)
