"""The `convperceiver` command: the parser built from each command group's `add_parser`.

A command's arguments sit beside its handler, in the group's `command.py`; a handler parses,
calls one library function and prints. A `ConvPerceiverError` (something the user can fix)
becomes one line on stderr and exit code 2; anything else keeps its traceback, because it is
a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from convperceiver.arguments import Handler
from convperceiver.data import command as data_command
from convperceiver.deploy import command as deploy_command
from convperceiver.engine import command as engine_command
from convperceiver.errors import ConvPerceiverError
from convperceiver.experiments import command as experiments_command
from convperceiver.explain import command as explain_command
from convperceiver.profiling import command as profiling_command

EXIT_USAGE = 2
# In the order `convperceiver --help` lists them.
COMMAND_GROUPS = (
    engine_command,  # train, pretrain, evaluate, predict
    profiling_command,  # summary, benchmark
    experiments_command,  # ablate
    explain_command,  # explain
    deploy_command,  # export, demo
    data_command,  # data synth | check | cache
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convperceiver",
        description="Video action recognition: a truncated R(2+1)D-18 with a Perceiver head."
        " Configs: --config FILE, then key=value overrides (e.g. model.cnn_blocks=6).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.add_parser(commands)
    return parser


def _setup_logging(*, verbose: bool) -> None:
    # Our own loggers only: Lightning configures its own and would print every line twice.
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("convperceiver")
    package_log.handlers[:] = [handler]
    package_log.setLevel(logging.DEBUG if verbose else logging.INFO)


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The parsed command line; `key=value` overrides may come after options too.

    argparse takes a command's positionals in one run, so an override written after an option
    (`explain --checkpoint C clip.mp4 --latents 2 eval.num_frames=8`) would be refused.
    """
    parser = build_parser()
    args, unparsed = parser.parse_known_args(argv)
    late = [a for a in unparsed if "=" in a and not a.startswith("-")]
    positionals = "overrides" if hasattr(args, "overrides") else "inputs"
    if len(late) < len(unparsed) or (late and getattr(args, positionals, None) is None):
        parser.error(f"unrecognized arguments: {' '.join(unparsed)}")
    if late:
        setattr(args, positionals, [*getattr(args, positionals), *late])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    _setup_logging(verbose=args.verbose)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ConvPerceiverError as error:
        print(f"{args.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
