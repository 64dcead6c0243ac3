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

from convperceiver.config import Config, load_config
from convperceiver.errors import ConvPerceiverError

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
    from convperceiver.analysis.summary import format_summary, summarize
    from convperceiver.data.datamodule import dataset_num_classes

    config = _config(args)
    summary = summarize(config, num_classes=dataset_num_classes(config.data))
    if args.json:
        _print_json(summary)
    else:
        print(format_summary(summary))
    return 0


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConvPerceiverError as error:
        print(f"convperceiver {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
