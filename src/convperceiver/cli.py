"""The `convperceiver` command: parse, load the config, call one library function, print.

A `ConvPerceiverError` (something the user can fix) becomes one line on stderr and exit
code 2; anything else keeps its traceback, because it is a bug.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from convperceiver.config import Config, load_config
from convperceiver.errors import ConfigError, ConvPerceiverError

if TYPE_CHECKING:
    from convperceiver.data.datamodule import VideoDataModule
    from convperceiver.models import FreezableClassifier

EXIT_USAGE = 2


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=Path, help="a YAML config file (default: built-in defaults)"
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def _config(args: argparse.Namespace) -> Config:
    return load_config(args.config, args.overrides)


def _print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def cmd_summary(args: argparse.Namespace) -> int:
    from convperceiver.data.datamodule import dataset_num_classes
    from convperceiver.profiling.summary import format_summary, summarize

    config = _config(args)
    summary = summarize(config, num_classes=dataset_num_classes(config.data))
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from convperceiver.profiling.benchmark import format_benchmark, run_benchmark

    if args.checkpoint:
        from convperceiver.engine.train import checkpoint_with_data

        model, config, _, datamodule = checkpoint_with_data(
            args.checkpoint, args.overrides, args.config
        )
    else:
        config = _config(args)
    result = run_benchmark(
        config,
        batch_size=args.batch_size,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        compile=args.compile,
        baseline=not args.no_baseline,
        stock=not args.no_stock,
        amp=args.amp,
        train_amp=args.train_amp,
        channels_last=args.memory_format == "channels_last",
        threads=args.threads,
    )
    if args.checkpoint:
        result["held_out_agreement"] = {
            "checkpoint": str(args.checkpoint),
            **_held_out_agreement(args, model, datamodule),
        }
    if args.json:
        _print_json(result)
    else:
        print(format_benchmark(result))
    return 0


def _held_out_agreement(
    args: argparse.Namespace, model: FreezableClassifier, datamodule: VideoDataModule
) -> dict:
    """`benchmark --checkpoint`: our inference settings against stock on its test clips."""
    from convperceiver.profiling.agreement import held_out_agreement
    from convperceiver.profiling.execution import ours_settings
    from convperceiver.profiling.measure import cpu_threads, resolve_device

    device = resolve_device(args.device)
    _, infer = ours_settings(
        device,
        amp=args.amp,
        train_amp=args.train_amp,
        channels_last=args.memory_format == "channels_last",
        compile=False,
    )
    with cpu_threads(args.threads):
        return held_out_agreement(
            model, datamodule, settings=infer, device=device, max_clips=args.agreement_clips
        )


def _print_metrics(title: str, metrics: dict[str, float], folder: Path) -> None:
    print(title)
    for name, value in metrics.items():
        print(f"  {name:<20} {value:.4f}" if value % 1 else f"  {name:<20} {int(value)}")
    print(f"run folder: {folder}")


def cmd_train(args: argparse.Namespace) -> int:
    from convperceiver.engine.train import train

    result = train(_config(args))
    if result.metrics:
        _print_metrics("test (best checkpoint, video level):", result.metrics, result.run_dir)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from convperceiver.engine.train import evaluate

    result = evaluate(
        args.checkpoint, args.overrides, config_path=args.config, out=args.out, split=args.split
    )
    if result.metrics:
        if args.json:
            _print_json({"metrics": result.metrics, "folder": str(result.run_dir)})
        else:
            _print_metrics(f"{args.split} (video level):", result.metrics, result.run_dir)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from convperceiver.engine.predict import VideoPredictor
    from convperceiver.engine.train import model_from_checkpoint
    from convperceiver.profiling.execution import inference_dtype

    model, config, class_names = model_from_checkpoint(args.checkpoint, args.set)
    amp = inference_dtype(args.amp, torch.device("cpu"))
    predictor = VideoPredictor.from_config(model, config, class_names, amp=amp)
    predictions = [predictor.predict(video, topk=args.topk) for video in args.videos]
    if args.json:
        _print_json([p.to_dict() for p in predictions])
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


def cmd_explain(args: argparse.Namespace) -> int:
    from convperceiver.engine.train import model_from_checkpoint
    from convperceiver.explain.explain import explain_video

    model, config, class_names = model_from_checkpoint(args.checkpoint)
    result = explain_video(
        model,
        config,
        class_names,
        args.video,
        out=args.out,
        class_name=args.class_name,
        latents=args.latents,
    )
    top = ", ".join(f"{label} {p:.3f}" for label, p in result.top)
    explained = f" for {result.class_name}" if result.class_name else ""
    print(f"{args.video}: {result.method}{explained}; top-5 of the clip: {top}")
    for path in result.paths:
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from convperceiver.deploy.demo import build_demo, launch_demo
    from convperceiver.engine.train import model_from_checkpoint

    model, config, class_names = model_from_checkpoint(args.checkpoint)
    demo = build_demo(model, config, class_names, examples=args.examples)
    url = launch_demo(demo, host=args.host, port=args.port)
    print(f"demo running at {url} (Ctrl+C to stop)", flush=True)
    demo.block_thread()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from convperceiver.deploy.export import SUFFIXES, export_model
    from convperceiver.engine.train import model_from_checkpoint

    overrides = [] if args.frames is None else [f"eval.num_frames={args.frames}"]
    model, config, _ = model_from_checkpoint(args.checkpoint, overrides)
    out = args.out or args.checkpoint.with_suffix(SUFFIXES[args.format])
    result = export_model(model, config, fmt=args.format, out=out, video=args.video)
    print(f"wrote {result.path}")
    print(f"parity vs PyTorch (2 clips): max abs diff {result.max_abs_diff:.3g}")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from convperceiver.data.synthetic import generate_synthetic

    root = generate_synthetic(
        args.out,
        classes=args.classes,
        videos_per_class=args.videos_per_class,
        frames=args.frames,
        size=args.size,
        seed=args.seed,
        background=args.background,
        workers=args.workers,
    )
    print(f"synthetic set: {root}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from convperceiver.data.check import check_dataset

    report = check_dataset(
        args.dataset, args.root, args.annotations, args.split, args.clip_duration
    )
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.format_text())
    return 0 if report.usable else 1


def cmd_ablate(args: argparse.Namespace) -> int:
    from convperceiver.experiments.ablation import load_suite, run_suite

    suite = load_suite(args.suite, args.overrides)
    index, count = args.shard
    print(
        f"suite {suite.name}: {len(suite.variants)} variants x {len(suite.seeds)} seeds "
        f"into {suite.output_dir}" + (f", shard {index}/{count}" if count > 1 else "")
    )
    report = run_suite(suite, report_dir=args.report, shard=args.shard)
    print(f"results: {report}" if report else "results: after the other shards finish")
    return 0


def _shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n, for argparse."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{text!r} is not i/n with 0 <= i < n, e.g. 0/2")
    return int(index), int(count)


def cmd_data_cache(args: argparse.Namespace) -> int:
    from convperceiver.data.cache import write_cache
    from convperceiver.data.datamodule import ensure_synthetic
    from convperceiver.data.layouts import dataset_subsets, video_root

    data = _config(args).data
    out = args.out or data.cache
    if not out:
        raise ConfigError("data cache: give --out DIR or set data.cache")
    ensure_synthetic(data)
    subsets, _ = dataset_subsets(data.dataset, data.root, data.annotations, data.split)
    records = list({r.path: r for records in subsets.values() for r in records}.values())
    report = write_cache(
        records,
        root=video_root(data.dataset, data.root),
        cache=out,
        size=tuple(data.resize),
        workers=args.workers,
    )
    print(
        f"cache {out}: {report.written} written, {report.present} already there, "
        f"{len(report.skipped)} skipped; train with data.cache={out}"
    )
    return 0


def _add_data_commands(commands: argparse._SubParsersAction) -> None:
    data = commands.add_parser("data", help="generate, check or cache datasets")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = actions.add_parser("synth", help="write the synthetic action set (HMDB51 layout)")
    synth.add_argument("--out", type=Path, required=True, help="dataset folder to create")
    synth.add_argument("--classes", type=int, default=10, help="an even number (pairs)")
    synth.add_argument("--videos-per-class", type=int, default=40)
    synth.add_argument("--frames", type=int, default=48, help="frames per video")
    synth.add_argument("--size", type=int, default=64, help="frame height and width (pixels)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--background", choices=["plain", "textured"], default="plain", help="textured is harder"
    )
    synth.add_argument("--workers", type=int, default=2, help="processes")
    synth.set_defaults(handler=cmd_data_synth)

    cache = actions.add_parser(
        "cache", help="re-encode a config's dataset at the training size for fast decoding"
    )
    _add_config_arguments(cache)
    cache.add_argument("--out", default="", help="cache folder (default: data.cache)")
    cache.add_argument("--workers", type=int, default=2, help="processes")
    cache.set_defaults(handler=cmd_data_cache)

    check = actions.add_parser("check", help="open every video of a dataset and report problems")
    check.add_argument(
        "--dataset", required=True, choices=["hmdb51", "ucf101", "folder", "list", "synthetic"]
    )
    check.add_argument("--root", type=Path, required=True)
    check.add_argument(
        "--annotations",
        type=Path,
        default=None,
        help="split files (hmdb51, ucf101) or list files (list)",
    )
    check.add_argument("--split", type=int, default=1, choices=[1, 2, 3])
    check.add_argument("--clip-duration", type=float, default=2.0, help="seconds")
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_data_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convperceiver",
        description="Video action recognition: a truncated R(2+1)D-18 with a Perceiver head.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    summary = commands.add_parser("summary", help="parameters, tokens, shapes and GFLOPs")
    _add_config_arguments(summary)
    summary.add_argument("--json", action="store_true", help="print one JSON object")
    summary.set_defaults(handler=cmd_summary)

    benchmark = commands.add_parser(
        "benchmark", help="clips/s, latency, memory and GFLOP/s, stock and ours, vs the baseline"
    )
    _add_config_arguments(benchmark)
    benchmark.add_argument(
        "--batch-size", type=int, default=None, help="clips per batch (default: 8 CPU, 32 CUDA)"
    )
    benchmark.add_argument("--repeats", type=int, default=5, help="timed runs; median quoted")
    benchmark.add_argument("--warmup", type=int, default=2, help="untimed runs first (>= 1)")
    benchmark.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    benchmark.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    benchmark.add_argument("--compile", action="store_true", help="torch.compile our runs")
    benchmark.add_argument(
        "--amp",
        choices=["auto", "bf16", "off"],
        default="auto",
        help="bf16 autocast for our inference (auto: where the device has native bf16)",
    )
    benchmark.add_argument("--train-amp", action="store_true", help="bf16 autocast in training")
    benchmark.add_argument(
        "--memory-format",
        choices=["channels_last", "channels_first"],
        default="channels_last",
        help="the CNN's memory format in our runs",
    )
    benchmark.add_argument("--no-baseline", action="store_true", help="skip the baseline")
    benchmark.add_argument(
        "--no-stock", action="store_true", help="skip the stock fp32 channels-first runs"
    )
    benchmark.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="a trained checkpoint: its config is benchmarked, and our inference's top-1"
        " agreement with stock fp32 is measured on its test clips",
    )
    benchmark.add_argument(
        "--agreement-clips", type=int, default=None, help="at most this many test clips"
    )
    benchmark.add_argument("--json", action="store_true", help="print one JSON object")
    benchmark.set_defaults(handler=cmd_benchmark)

    train = commands.add_parser("train", help="train, then test the best checkpoint")
    _add_config_arguments(train)
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser("evaluate", help="test a checkpoint at video level")
    evaluate.add_argument("--checkpoint", type=Path, required=True)
    _add_config_arguments(evaluate)
    evaluate.add_argument("--split", choices=["test", "val"], default="test")
    evaluate.add_argument("--out", type=Path, default=None, help="folder for the reports")
    evaluate.add_argument("--json", action="store_true")
    evaluate.set_defaults(handler=cmd_evaluate)

    predict = commands.add_parser("predict", help="top-k classes of video files")
    predict.add_argument("--checkpoint", type=Path, required=True)
    predict.add_argument("videos", nargs="+", metavar="VIDEO")
    predict.add_argument("--topk", type=int, default=5)
    predict.add_argument("--json", action="store_true")
    predict.add_argument(
        "--amp",
        choices=["off", "bf16", "auto"],
        default="off",
        help="bf16 autocast (auto: where the CPU has native bf16); default fp32",
    )
    predict.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="key=value",
        help="config override, e.g. --set eval.num_clips=4 (repeatable)",
    )
    predict.set_defaults(handler=cmd_predict)

    explain = commands.add_parser(
        "explain", help="attention or Grad-CAM heat maps on the middle clip of a video"
    )
    explain.add_argument("--checkpoint", type=Path, required=True)
    explain.add_argument("video", type=Path, metavar="VIDEO")
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
    explain.set_defaults(handler=cmd_explain)

    demo = commands.add_parser(
        "demo", help="a local web page: upload a video, see its top-5 classes and attention"
    )
    demo.add_argument("--checkpoint", type=Path, required=True)
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
    demo.set_defaults(handler=cmd_demo)

    export = commands.add_parser(
        "export", help="an ONNX or TorchScript file, checked against PyTorch"
    )
    export.add_argument("--checkpoint", type=Path, required=True)
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
    export.set_defaults(handler=cmd_export)

    ablate = commands.add_parser("ablate", help="train, test and tabulate a suite of variants")
    ablate.add_argument("--suite", type=Path, required=True, help="a suite YAML file")
    ablate.add_argument(
        "--report",
        type=Path,
        default=None,
        help="also write results.md, results.csv and the figures here",
    )
    ablate.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="I/N",
        help="run only every N-th run from the I-th, so N processes share the suite",
    )
    ablate.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides for every variant"
    )
    ablate.set_defaults(handler=cmd_ablate)

    _add_data_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own loggers only: Lightning configures its own and would print every line twice.
    handler_out = logging.StreamHandler()
    handler_out.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("convperceiver")
    package_log.handlers[:] = [handler_out]
    package_log.setLevel(logging.DEBUG if args.verbose else logging.INFO)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConvPerceiverError as error:
        print(f"convperceiver {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
