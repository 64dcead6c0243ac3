"""`convperceiver data synth | check | cache`: their arguments beside their handlers.

Each reads the dataset from `--config FILE` and `key=value` overrides, as training does, so
the set a command writes or checks is the one a run with the same arguments reads.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from convperceiver.arguments import (
    Subcommands,
    add_config_arguments,
    add_json_argument,
    load_args_config,
    print_json,
    set_handler,
)


def cmd_data_synth(args: argparse.Namespace) -> int:
    from convperceiver.data.synthetic import synthesize

    data = load_args_config(args).data
    if args.out is not None:
        data = dataclasses.replace(data, root=str(args.out))
    print(f"synthetic set: {synthesize(data, workers=args.workers)}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from convperceiver.data.check import check_data

    report = check_data(load_args_config(args).data)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.format_text())
    return 0 if report.usable else 1


def cmd_data_cache(args: argparse.Namespace) -> int:
    from convperceiver.data.cache import cache_dataset

    data = load_args_config(args).data
    print(cache_dataset(data, out=args.out or None, workers=args.workers).format_text())
    return 0


def _workers(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="processes (default: 2)")


def add_parser(commands: Subcommands) -> None:
    data = commands.add_parser("data", help="generate, check or cache a config's dataset")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    synth = actions.add_parser(
        "synth",
        help="write the synthetic action set (HMDB51 layout) that data.synthetic describes",
    )
    add_config_arguments(synth)
    synth.add_argument(
        "--out", type=Path, default=None, metavar="DIR", help="short for data.root=DIR"
    )
    _workers(synth)
    set_handler(synth, cmd_data_synth)

    check = actions.add_parser("check", help="open every video of a dataset and report problems")
    add_config_arguments(check)
    add_json_argument(check)
    set_handler(check, cmd_data_check)

    cache = actions.add_parser(
        "cache", help="re-encode a config's dataset at the training size for fast decoding"
    )
    add_config_arguments(cache)
    cache.add_argument(
        "--out", default="", metavar="DIR", help="cache folder (default: data.cache)"
    )
    cache.add_argument("--workers", type=int, default=None, help="processes (default: every core)")
    set_handler(cache, cmd_data_cache)
