"""Arguments every command group shares: `--config FILE` then `key=value` overrides, `--amp`,
`--json`. One place, so the same option reads and defaults the same in every command.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from convperceiver.errors import ConfigError

if TYPE_CHECKING:
    from convperceiver.config import Config

Subcommands = argparse._SubParsersAction  # what `add_subparsers` returns
Handler = Callable[[argparse.Namespace], int]  # parses, calls one library function, prints

# bf16 autocast for inference: the same default in `predict` and `benchmark`.
AMP_DEFAULT = "auto"
AMP_HELP = (
    "bf16 autocast for inference: auto (the default) where the device has native bf16"
    " (AVX512-BF16 or AMX CPUs, Ampere+ GPUs), bf16 always, off for fp32"
)


CHECKPOINT_CONFIG = "the checkpoint's config"  # what --config merges over, given a checkpoint


def set_handler(parser: argparse.ArgumentParser, handler: Handler) -> None:
    """The function `main` calls for this (sub)command; errors name it as `prog` does."""
    parser.set_defaults(handler=handler, prog=parser.prog)


def add_config_arguments(
    parser: argparse.ArgumentParser, *, overrides: bool = True, base: str = "the defaults"
) -> None:
    """`--config FILE` and (unless the command reads other positionals) `key=value ...`."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help=f"a YAML config file, merged over {base}"
    )
    if overrides:
        parser.add_argument(
            "overrides", nargs="*", metavar="key=value", help="config overrides, in order"
        )


def add_amp_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amp", default=AMP_DEFAULT, metavar="auto|bf16|off", help=AMP_HELP)


def add_json_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def load_args_config(args: argparse.Namespace) -> Config:
    """The config that `--config` and the `key=value` positionals describe."""
    from convperceiver.config import load_config

    return load_config(args.config, args.overrides)


def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2, default=str))


def split_videos_and_overrides(
    arguments: list[str], *, command: str
) -> tuple[list[str], list[str]]:
    """(videos, overrides): an argument with `=` that is not an existing file is an override."""
    videos, overrides = [], []
    for argument in arguments:
        is_override = "=" in argument and not Path(argument).exists()
        (overrides if is_override else videos).append(argument)
    if not videos:
        raise ConfigError(f"{command}: no VIDEO among {' '.join(arguments)}")
    return videos, overrides
