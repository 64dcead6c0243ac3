"""A suite's pretraining runs: the checkpoints its variants start from (`init_from: <name>`).

A suite file may list them before its sections:

    pretraining:
      - name: masked                  # masked video modelling (`convperceiver pretrain`)
        stage: pretrain
        overrides: [pretrain.mask_ratio=0.75]
      - name: supervised_disjoint     # supervised training on other classes
        stage: train
        overrides: ["data.classes=[a_then_b,b_then_a]"]

Each runs once, with the suite's first seed, into `<output_dir>/pretraining/<name>/` and leaves
`pretrain.json` there when done. Shard 0 runs them; other shards wait, and give up with one
line when shard 0 has shown no sign of life (`shard0.alive`, touched every 30 s) for 10 min.
A variant's `init_from: masked` becomes `model.init_from=<that run>/checkpoints/<last.ckpt |
best.ckpt>`: the last checkpoint of masked pretraining (as VideoMAE fine-tunes from), the best
one of supervised training.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING

from convperceiver.config import Config
from convperceiver.errors import ConfigError

log = logging.getLogger(__name__)

RESULT_FILE = "pretrain.json"
STAGES = ("pretrain", "train")
WAIT_SECONDS = 30  # how often a shard that needs another shard's pretraining looks again
HEARTBEAT_FILE = "shard0.alive"  # in <output_dir>/pretraining/, touched while shard 0 runs them
HEARTBEAT_SECONDS = 30
GIVE_UP_SECONDS = 600  # no sign of shard 0 for this long: a waiting shard stops


@dataclass
class PretrainingSpec:
    """One pretraining run of a suite."""

    name: str = MISSING  # what a variant's init_from names
    stage: str = "pretrain"  # pretrain: masked video modelling | train: supervised
    config: str | None = None  # a config file that replaces base (a path from the suite file)
    overrides: list[str] = field(default_factory=list)  # key=value, after the suite's


def run_folder(output_dir: Path, spec: PretrainingSpec) -> Path:
    return output_dir / "pretraining" / spec.name


def checkpoint_of(output_dir: Path, spec: PretrainingSpec) -> Path:
    """The checkpoint variants start from; it exists once the run is done."""
    kept = "last.ckpt" if spec.stage == "pretrain" else "best.ckpt"
    return run_folder(output_dir, spec) / "checkpoints" / kept


def run_pretraining(spec: PretrainingSpec, config: Config, output_dir: Path) -> dict[str, Any]:
    """Run (or resume, or read back) one pretraining run; its summary."""
    from convperceiver.engine.pretrain import pretrain
    from convperceiver.engine.train import train

    folder = run_folder(output_dir, spec)
    result_file = folder / RESULT_FILE
    if result_file.is_file():
        return json.loads(result_file.read_text())
    if (folder / "checkpoints" / "last.ckpt").is_file():
        log.info("pretraining %s: resuming from its last checkpoint", spec.name)
        config.run.resume = "last"
    elif folder.exists():
        shutil.rmtree(folder)  # stopped in its first epoch: nothing to keep
    started = time.perf_counter()
    outcome = (pretrain if spec.stage == "pretrain" else train)(config)
    result = {
        "name": spec.name,
        "stage": spec.stage,
        "checkpoint": str(checkpoint_of(output_dir, spec)),
        "wall_s": time.perf_counter() - started,
        **{key: value for key, value in outcome.metrics.items() if isinstance(value, float)},
        **outcome.throughput,
    }
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


@contextmanager
def heartbeat(output_dir: Path) -> Iterator[None]:
    """Touch the heartbeat file every HEARTBEAT_SECONDS while the block runs (shard 0)."""
    path = output_dir / "pretraining" / HEARTBEAT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()

    def beat() -> None:
        path.touch()
        while not stop.wait(HEARTBEAT_SECONDS):
            path.touch()

    thread = threading.Thread(target=beat, name="shard0-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def wait_for(specs: list[PretrainingSpec], output_dir: Path) -> list[dict[str, Any]]:
    """The results of the pretraining runs shard 0 is doing, once they are all there.

    Raises a ConfigError when neither the results nor a heartbeat of shard 0 newer than
    GIVE_UP_SECONDS have appeared since this shard began to wait.
    """
    files = [run_folder(output_dir, spec) / RESULT_FILE for spec in specs]
    beat = output_dir / "pretraining" / HEARTBEAT_FILE
    started = time.time()
    announced = False
    while not all(path.is_file() for path in files):
        last_sign = max(started, beat.stat().st_mtime if beat.is_file() else 0.0)
        if time.time() - last_sign > GIVE_UP_SECONDS:
            raise ConfigError(
                f"shard 0 has shown no sign of life for {GIVE_UP_SECONDS / 60:.0f} min and the "
                "suite's pretraining runs are not all done: start shard 0 (it resumes them), "
                "then this shard again"
            )
        if not announced:
            log.info("waiting for shard 0 to finish the suite's pretraining runs")
            announced = True
        time.sleep(WAIT_SECONDS)
    return [json.loads(path.read_text()) for path in files]


def markdown_rows(results: list[dict[str, Any]]) -> list[str]:
    """A results.md table of the pretraining runs: what each cost and where it ended."""
    lines = [
        "## Pretraining runs",
        "",
        "| Run | Stage | Final val loss | Test top-1 | Wall time |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        loss = r.get("val/loss")
        top1 = r.get("video_top1")  # supervised runs only: on their own classes
        wall = r["wall_s"]
        lines.append(
            f"| {r['name']} | {r['stage']} | {'-' if loss is None else f'{loss:.4f}'} | "
            f"{'-' if top1 is None else f'{top1:.4f}'} | "
            f"{f'{wall:.0f} s' if wall < 120 else f'{wall / 60:.1f} min'} |"
        )
    return [*lines, ""]
