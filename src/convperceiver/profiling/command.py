"""`convperceiver summary | benchmark [--pretrain]`: their arguments beside their handlers."""

from __future__ import annotations

import argparse
from pathlib import Path

from convperceiver.arguments import (
    Subcommands,
    add_amp_argument,
    add_config_arguments,
    add_json_argument,
    load_args_config,
    print_json,
    set_handler,
)


def cmd_summary(args: argparse.Namespace) -> int:
    from convperceiver.data.datamodule import dataset_num_classes
    from convperceiver.profiling.summary import format_summary, summarize

    config = load_args_config(args)
    summary = summarize(config, num_classes=dataset_num_classes(config.data))
    if args.json:
        print_json(summary)
    else:
        print(format_summary(summary))
    return 0


def cmd_pretrain_cost(args: argparse.Namespace) -> int:
    from convperceiver.errors import ConfigError
    from convperceiver.profiling.pretrain_cost import format_pretrain_cost, pretrain_cost

    if args.checkpoint:
        raise ConfigError("--pretrain measures a config's model: give --config, not --checkpoint")
    if args.compile:
        raise ConfigError(
            "--pretrain runs eager, as pretraining does (its visible-token gathers break"
            " torch.compile's graphs): drop --compile"
        )
    result = pretrain_cost(
        load_args_config(args),
        batch_size=args.batch_size,
        repeats=args.repeats,
        warmup=args.warmup,
        device=args.device,
        train_amp=args.train_amp,
        channels_last=args.memory_format == "channels_last",
        threads=args.threads,
    )
    if args.json:
        print_json(result)
    else:
        print(format_pretrain_cost(result))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    if args.pretrain:
        return cmd_pretrain_cost(args)
    from convperceiver.profiling.benchmark import (
        benchmark_checkpoint,
        format_benchmark,
        run_benchmark,
    )

    options = dict(
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
        result = benchmark_checkpoint(
            args.checkpoint,
            args.overrides,
            config_path=args.config,
            agreement_clips=args.agreement_clips,
            **options,
        )
    else:
        result = run_benchmark(load_args_config(args), **options)
    if args.json:
        print_json(result)
    else:
        print(format_benchmark(result))
    return 0


def add_parser(commands: Subcommands) -> None:
    summary = commands.add_parser("summary", help="parameters, tokens, shapes and GFLOPs")
    add_config_arguments(summary)
    add_json_argument(summary)
    set_handler(summary, cmd_summary)

    benchmark = commands.add_parser(
        "benchmark", help="clips/s, latency, memory and GFLOP/s, stock and ours, vs the baseline"
    )
    add_config_arguments(benchmark, base="the defaults, or over the --checkpoint's config")
    benchmark.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="CKPT",
        help="a trained checkpoint: its config is benchmarked, and our inference's top-1"
        " agreement with stock fp32 is measured on its test clips",
    )
    benchmark.add_argument(
        "--pretrain",
        action="store_true",
        help="time a masked-pretraining step (pretrain.mask_ratio) against a training step of"
        " the same model, and count both steps' FLOPs and the cross-attention's saving",
    )
    benchmark.add_argument(
        "--agreement-clips", type=int, default=None, help="at most this many test clips"
    )
    benchmark.add_argument(
        "--batch-size", type=int, default=None, help="clips per batch (default: 8 CPU, 32 CUDA)"
    )
    benchmark.add_argument("--repeats", type=int, default=5, help="timed runs; median quoted")
    benchmark.add_argument("--warmup", type=int, default=2, help="untimed runs first (>= 1)")
    benchmark.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    benchmark.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    benchmark.add_argument("--compile", action="store_true", help="torch.compile our runs")
    add_amp_argument(benchmark)
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
    add_json_argument(benchmark)
    set_handler(benchmark, cmd_benchmark)
