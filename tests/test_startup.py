"""`convperceiver --help` starts at once: building the parser imports neither torch nor PyAV."""

import subprocess
import sys

PROBE = """
import sys
from convperceiver.cli import build_parser
build_parser()
print(sorted(name for name in ("torch", "av", "lightning", "numpy") if name in sys.modules))
"""


def test_the_parser_loads_no_heavy_library():
    completed = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout.strip() == "[]"
