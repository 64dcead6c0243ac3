"""`convperceiver export | demo`: their arguments beside their handlers."""

from __future__ import annotations

import argparse
from pathlib import Path

from convperceiver.arguments import (
    CHECKPOINT_CONFIG,
    Subcommands,
    add_config_arguments,
    set_handler,
)


def cmd_export(args: argparse.Namespace) -> int:
    from convperceiver.deploy.export import export_checkpoint

    result = export_checkpoint(
        args.checkpoint,
        fmt=args.format,
        out=args.out,
        frames=args.frames,
        video=args.video,
        overrides=args.overrides,
        config_path=args.config,
    )
    print(f"wrote {result.path}")
    print(f"parity vs PyTorch (2 clips): max abs diff {result.max_abs_diff:.3g}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from convperceiver.deploy.demo import build_demo, launch_demo
    from convperceiver.engine.train import model_from_checkpoint

    model, config, class_names = model_from_checkpoint(args.checkpoint, args.overrides, args.config)
    demo = build_demo(model, config, class_names, examples=args.examples)
    url = launch_demo(demo, host=args.host, port=args.port)
    print(f"demo running at {url} (Ctrl+C to stop)", flush=True)
    demo.block_thread()
    return 0


def add_parser(commands: Subcommands) -> None:
    export = commands.add_parser(
        "export", help="an ONNX or TorchScript file, checked against PyTorch"
    )
    export.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT")
    add_config_arguments(export, base=CHECKPOINT_CONFIG)
    export.add_argument("--format", choices=["onnx", "torchscript"], required=True)
    export.add_argument(
        "--out", type=Path, default=None, help="file to write (default: beside the checkpoint)"
    )
    export.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="T",
        help="frames per clip the file takes (default: the checkpoint's evaluation clip)",
    )
    export.add_argument(
        "--video",
        type=Path,
        default=None,
        help="run the parity check on this video's middle clip (default: a synthetic clip)",
    )
    set_handler(export, cmd_export)

    demo = commands.add_parser(
        "demo", help="a local web page: upload a video, see its top-5 classes and attention"
    )
    demo.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT")
    add_config_arguments(demo, base=CHECKPOINT_CONFIG)
    demo.add_argument(
        "--examples",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder of video clips the page offers as examples",
    )
    demo.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: this machine only)"
    )
    demo.add_argument("--port", type=int, default=7860)
    set_handler(demo, cmd_demo)
