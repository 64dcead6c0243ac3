"""`convperceiver train | pretrain | evaluate | predict`: their arguments beside their handlers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from convperceiver.arguments import (
    CHECKPOINT_CONFIG,
    Subcommands,
    add_amp_argument,
    add_config_arguments,
    add_json_argument,
    load_args_config,
    print_json,
    set_handler,
    split_videos_and_overrides,
)


def _print_metrics(title: str, metrics: dict[str, float], folder: Path) -> None:
    print(title)
    for name, value in metrics.items():
        print(f"  {name:<20} {value:.4f}" if value % 1 else f"  {name:<20} {int(value)}")
    print(f"run folder: {folder}")


def cmd_train(args: argparse.Namespace) -> int:
    from convperceiver.engine.train import train

    result = train(load_args_config(args))
    if result.metrics:
        _print_metrics("test (best checkpoint, video level):", result.metrics, result.run_dir)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from convperceiver.engine.pretrain import pretrain

    result = pretrain(load_args_config(args))
    print(f"val/loss (best checkpoint): {result.metrics.get('val/loss', float('nan')):.4f}")
    print(f"fine-tune with: model.init_from={result.run_dir / 'checkpoints' / 'last.ckpt'}")
    print(f"run folder: {result.run_dir}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from convperceiver.engine.train import evaluate

    result = evaluate(
        args.checkpoint, args.overrides, config_path=args.config, out=args.out, split=args.split
    )
    if result.metrics and args.json:
        print_json({"metrics": result.metrics, "folder": str(result.run_dir)})
    elif result.metrics:
        _print_metrics(f"{args.split} (video level):", result.metrics, result.run_dir)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from convperceiver.data.layouts import video_files
    from convperceiver.engine.predict import VideoPredictor
    from convperceiver.engine.train import model_from_checkpoint
    from convperceiver.models.runtime import inference_dtype

    paths, overrides = split_videos_and_overrides(args.inputs, command="predict")
    videos = video_files(paths)
    amp = inference_dtype(args.amp, torch.device("cpu"))
    model, config, class_names = model_from_checkpoint(args.checkpoint, overrides, args.config)
    predictor = VideoPredictor.from_config(model, config, class_names, amp=amp)
    predictions = [predictor.predict(video, topk=args.topk) for video in videos]
    if args.json:
        print_json([p.to_dict() for p in predictions])
    for prediction in predictions:
        if prediction.error:
            print(f"{prediction.path}: error: {prediction.error}", file=sys.stderr)
        elif not args.json:
            top = ", ".join(
                f"{label} {p:.3f}"
                for label, p in zip(prediction.labels, prediction.probabilities, strict=True)
            )
            print(f"{prediction.path}: {top}")
    return 0 if any(not p.error for p in predictions) else 1


def add_parser(commands: Subcommands) -> None:
    train = commands.add_parser("train", help="train, then test the best checkpoint")
    add_config_arguments(train)
    set_handler(train, cmd_train)

    pretrain = commands.add_parser(
        "pretrain",
        help="masked video modelling on a dataset's videos (labels ignored), for model.init_from",
    )
    add_config_arguments(pretrain)
    set_handler(pretrain, cmd_pretrain)

    evaluate = commands.add_parser("evaluate", help="test a checkpoint at video level")
    evaluate.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT")
    add_config_arguments(evaluate, base=CHECKPOINT_CONFIG)
    evaluate.add_argument("--split", choices=["test", "val"], default="test")
    evaluate.add_argument("--out", type=Path, default=None, help="folder for the reports")
    add_json_argument(evaluate)
    set_handler(evaluate, cmd_evaluate)

    predict = commands.add_parser(
        "predict",
        help="top-k classes of video files (a folder: every video in it, recursively)",
        description="Top-k classes of video files; a folder stands for every video in it, at"
        " any depth. An argument with '=' that is not an existing file is a config override"
        " (e.g. eval.num_clips=4).",
    )
    predict.add_argument("--checkpoint", type=Path, required=True, metavar="CKPT")
    add_config_arguments(predict, overrides=False, base=CHECKPOINT_CONFIG)
    predict.add_argument("inputs", nargs="+", metavar="VIDEO|FOLDER|key=value")
    predict.add_argument("--topk", type=int, default=5)
    add_amp_argument(predict)
    add_json_argument(predict)
    set_handler(predict, cmd_predict)
