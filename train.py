"""`python train.py [--config config.yaml] [key=value ...]`: the seed's habit, kept."""

import sys
from pathlib import Path

from convperceiver.cli import main

if __name__ == "__main__":
    arguments = sys.argv[1:]
    default = Path(__file__).with_name("config.yaml")
    if "--config" not in arguments and default.is_file():
        arguments = ["--config", str(default), *arguments]
    sys.exit(main(["train", *arguments]))
