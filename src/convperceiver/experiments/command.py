"""`convperceiver ablate`: its arguments beside its handler."""

from __future__ import annotations

import argparse
from pathlib import Path

from convperceiver.arguments import Subcommands, set_handler


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


def shard(text: str) -> tuple[int, int]:
    """'i/n' with 0 <= i < n, for argparse."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
        raise argparse.ArgumentTypeError(f"{text!r} is not i/n with 0 <= i < n, e.g. 0/2")
    return int(index), int(count)


def add_parser(commands: Subcommands) -> None:
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
        type=shard,
        default=(0, 1),
        metavar="I/N",
        help="run only every N-th run from the I-th, so N processes share the suite",
    )
    ablate.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides for every variant"
    )
    set_handler(ablate, cmd_ablate)
