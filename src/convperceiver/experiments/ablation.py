"""Ablation suites: named variants x seeds, trained, tested and tabulated in one command.

A suite file (YAML):

    name: seed_tables
    notes: what the tables show and how they were made
    base: config.yaml              # every variant starts from this config (path from the suite)
    output_dir: runs/ablations/seed_tables
    seeds: [0, 1]
    overrides: [trainer.max_epochs=5]        # applied to every variant
    eval_frames: [8, 16, 32]                 # optional: re-test each best checkpoint at these
    sections:
      - title: Attention depth
        variants:
          - name: k8_cross1_self1
            config: hmdb51/k8_cross1_self1.yaml   # optional: replaces base for this variant
            overrides: [model.self_blocks=1]

Each (variant, seed) trains into `<output_dir>/<variant>/seed<n>` and leaves `result.json`
there when done: a rerun skips finished runs and resumes interrupted ones from last.ckpt.
`--shard i/n` splits the runs between n processes that share the output folder.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from convperceiver.config import Config, load_config
from convperceiver.data.datamodule import dataset_num_classes
from convperceiver.engine.reports import read_csv_logs
from convperceiver.engine.train import evaluate, train
from convperceiver.errors import ConfigError
from convperceiver.experiments.plots import plot_suite
from convperceiver.experiments.tables import markdown, write_csv
from convperceiver.profiling.summary import summarize

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


@dataclass
class Variant:
    name: str
    config: Path | None = None
    overrides: list[str] = field(default_factory=list)


@dataclass
class Suite:
    name: str
    base: Path | None
    output_dir: Path
    seeds: list[int]
    overrides: list[str]
    eval_frames: list[int]
    variants: list[Variant]
    sections: dict[str, list[str]]  # title -> variant names; a variant may sit in several
    notes: str = ""  # printed under the title of results.md: protocol, data, budget

    def resolve(self, variant: Variant, seed: int) -> Config:
        """The full config of one run: base or variant file, suite then variant overrides."""
        overrides = [
            *self.overrides,
            *variant.overrides,
            f"trainer.seed={seed}",
            f"run.output_dir={self.output_dir / variant.name}",
            f"run.name=seed{seed}",
        ]
        try:
            return load_config(variant.config or self.base, overrides)
        except ConfigError as error:
            raise ConfigError(f"suite variant {variant.name!r}: {error}") from error


SUITE_KEYS = {
    "name",
    "notes",
    "base",
    "output_dir",
    "seeds",
    "overrides",
    "eval_frames",
    "sections",
}
VARIANT_KEYS = {"name", "config", "overrides"}


def _keys(mapping: dict, valid: set[str], where: str) -> None:
    unknown = sorted(set(mapping) - valid)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(sorted(valid))}"
        )


def load_suite(path: str | Path, extra_overrides: list[str] | None = None) -> Suite:
    """Read a suite and resolve every variant's config, so mistakes surface before training."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"suite file not found: {path}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path))
    except (OmegaConfBaseException, ValueError, OSError) as error:
        raise ConfigError(f"cannot read suite {path}: {str(error).splitlines()[0]}") from error
    if not isinstance(raw, dict) or not raw.get("sections"):
        raise ConfigError(f"suite {path}: needs a 'sections' list of variants")
    _keys(raw, SUITE_KEYS, f"suite {path}")
    here = path.parent

    def relative(value: str | None) -> Path | None:
        return None if value is None else here / value

    variants: dict[str, Variant] = {}
    sections: dict[str, list[str]] = {}
    for section in raw["sections"]:
        _keys(section, {"title", "variants"}, f"suite {path} section")
        names = sections.setdefault(str(section.get("title", "")), [])
        for entry in section.get("variants") or []:
            where = f"suite {path} variant {entry.get('name')!r}"
            _keys(entry, VARIANT_KEYS, where)
            variant = Variant(
                name=str(entry["name"]),
                config=relative(entry.get("config")),
                overrides=list(entry.get("overrides", [])),
            )
            # The seed's tables repeat rows: the same name is one run, shown in each table.
            if variants.setdefault(variant.name, variant) != variant:
                raise ConfigError(f"{where}: the name is used again for another config")
            names.append(variant.name)
    suite = Suite(
        name=str(raw.get("name", path.stem)),
        base=relative(raw.get("base")),
        output_dir=Path(raw.get("output_dir", f"runs/ablations/{path.stem}")),
        seeds=[int(s) for s in raw.get("seeds", [0])],
        overrides=[*raw.get("overrides", []), *(extra_overrides or [])],
        eval_frames=[int(f) for f in raw.get("eval_frames", [])],
        variants=list(variants.values()),
        sections=sections,
        notes=str(raw.get("notes", "")).strip(),
    )
    for variant in suite.variants:
        suite.resolve(variant, suite.seeds[0])
    return suite


def _best_epoch_losses(run_dir: Path) -> dict[str, float]:
    """Train loss, val loss and val accuracy of the epoch whose checkpoint was kept."""
    series = read_csv_logs(run_dir / "csv")
    val = dict(series.get("val/video_top1", []))
    if not val:
        return {}
    epoch = max(val, key=lambda e: (val[e], -e))
    out = {"best_epoch": epoch, "val_acc": val[epoch]}
    for key, name in (
        ("train/loss_epoch", "train_loss"),
        ("val/loss", "val_loss"),
        ("val/video_top5", "val_top5"),
    ):
        values = dict(series.get(key, []))
        if epoch in values:
            out[name] = values[epoch]
    return out


def run_variant(suite: Suite, variant: Variant, seed: int) -> dict[str, Any]:
    """Train and test one (variant, seed) unless its result is already on disk."""
    run_dir = suite.output_dir / variant.name / f"seed{seed}"
    result_file = run_dir / RESULT_FILE
    if result_file.is_file():
        return json.loads(result_file.read_text())
    config = suite.resolve(variant, seed)
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        log.info("%s seed %d: resuming from its last checkpoint", variant.name, seed)
        config.run.resume = "last"
    elif run_dir.exists():
        log.warning(
            "%s seed %d: %s holds no checkpoint (stopped in its first epoch); starting it again",
            variant.name,
            seed,
            run_dir,
        )
        shutil.rmtree(run_dir)
    started = time.perf_counter()
    outcome = train(config)
    wall = time.perf_counter() - started
    summary = summarize(config, num_classes=dataset_num_classes(config.data))
    result: dict[str, Any] = {
        "variant": variant.name,
        "seed": seed,
        **_best_epoch_losses(outcome.run_dir),
        "test_top1": outcome.metrics.get("video_top1"),
        "test_top5": outcome.metrics.get("video_top5"),
        "test_mean_class_acc": outcome.metrics.get("mean_class_accuracy"),
        "cnn_params": summary["cnn_params"],
        "attention_params": summary["attention_params"],
        "trainable_params": summary["trainable_params"],
        "gflops": summary["gflops"],
        **outcome.throughput,
        "wall_s": wall,
        "eval_frames": {},
    }
    for frames in suite.eval_frames:
        duration = config.data.clip_duration * frames / config.data.num_frames
        evaluated = evaluate(
            outcome.best_checkpoint,
            [
                f"eval.num_frames={frames}",
                f"eval.clip_duration={duration}",
                "run.progress_bar=false",
            ],
            out=run_dir / f"eval_frames{frames}",
        )
        result["eval_frames"][str(frames)] = evaluated.metrics["video_top1"]
    result_file.write_text(json.dumps(result, indent=2) + "\n")
    return result


def run_suite(
    suite: Suite, *, report_dir: Path | None = None, shard: tuple[int, int] = (0, 1)
) -> Path | None:
    """Every variant x seed in suite order (finished runs are read back, not rerun), then
    results.csv, results.md and the figures in the suite's folder (and in `report_dir`).

    ``shard=(i, n)`` runs only every n-th run from the i-th, so n processes (GPUs, array jobs)
    share a suite; whichever finds every run done writes the tables, else None is returned.
    """
    index, count = shard
    jobs = [(variant, seed) for variant in suite.variants for seed in suite.seeds]
    for number, (variant, seed) in enumerate(jobs):
        if number % count == index:
            log.info("suite %s: %s seed %d", suite.name, variant.name, seed)
            run_variant(suite, variant, seed)
    result_files = [suite.output_dir / v.name / f"seed{s}" / RESULT_FILE for v, s in jobs]
    pending = [path.parent for path in result_files if not path.is_file()]
    if pending:
        log.info("suite %s: %d runs of other shards still to finish", suite.name, len(pending))
        return None
    results = [json.loads(path.read_text()) for path in result_files]
    for folder in filter(None, (suite.output_dir, report_dir)):
        folder.mkdir(parents=True, exist_ok=True)
        write_csv(results, folder / "results.csv")
        table = markdown(results, suite.sections, title=suite.name, notes=suite.notes)
        (folder / "results.md").write_text(table)
        plot_suite(results, suite.sections, folder)
    return (report_dir or suite.output_dir) / "results.md"
