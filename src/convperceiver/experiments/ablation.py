"""Ablation suites: named variants x seeds, trained, tested and tabulated in one command.

A suite file (YAML):

    name: seed_tables
    notes: what the tables show and how they were made
    base: config.yaml              # every variant starts from this config (path from the suite)
    output_dir: runs/ablations/seed_tables
    seeds: [0, 1]
    overrides: [trainer.max_epochs=5]        # applied to every variant
    eval_frames: [8, 16, 32]                 # optional: re-test each best checkpoint at these
    pretraining:                             # optional: see pretraining_runs.py
      - {name: masked, stage: pretrain, overrides: [pretrain.mask_ratio=0.75]}
    sections:
      - title: Attention depth
        variants:
          - name: k8_cross1_self1
            config: hmdb51/k8_cross1_self1.yaml   # optional: replaces base for this variant
            overrides: [model.self_blocks=1]
            init_from: masked                     # optional: a pretraining run, or a checkpoint
            series: masked                        # optional: its line in labels.png

Each (variant, seed) trains into `<output_dir>/<variant>/seed<n>` and leaves `result.json`
there when done: a rerun skips finished runs and resumes interrupted ones from last.ckpt.
`--shard i/n` splits the runs between n processes that share the output folder; shard 0 runs
the pretraining, and the others wait for it.

The file is read through the typed schema `SuiteFile` > `SectionSpec` > `VariantSpec`
(OmegaConf, as `config.py` reads configs): a key a run may need later is one field there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from convperceiver.config import Config, load_config
from convperceiver.data.datamodule import dataset_num_classes
from convperceiver.engine.reports import read_csv_logs
from convperceiver.engine.train import evaluate, train
from convperceiver.errors import ConfigError
from convperceiver.experiments import pretraining_runs
from convperceiver.experiments.plots import plot_suite
from convperceiver.experiments.pretraining_runs import PretrainingSpec
from convperceiver.experiments.tables import markdown, write_csv
from convperceiver.profiling.summary import summarize

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"


@dataclass
class VariantSpec:
    """One row of the tables: a name, and how its config differs from the suite's."""

    name: str = MISSING  # the run folder's name; the same name in two sections is one run
    config: str | None = None  # a config file that replaces base (a path from the suite file)
    overrides: list[str] = field(default_factory=list)  # key=value, after the suite's
    init_from: str | None = None  # the name of one of the suite's pretraining runs, or a file
    series: str | None = None  # its line in labels.png (accuracy against data.label_fraction)
    seeds: list[int] | None = None  # None = the suite's seeds


@dataclass
class SectionSpec:
    """One table of results.md and one figure."""

    title: str = ""
    variants: list[VariantSpec] = field(default_factory=list)


@dataclass
class SuiteFile:
    """A suite YAML file as written; `load_suite` resolves it into a `Suite`."""

    name: str | None = None  # None = the file's stem
    notes: str = ""  # printed under the title of results.md: protocol, data, budget
    base: str | None = None  # the config every variant starts from (a path from the suite file)
    output_dir: str | None = None  # None = runs/ablations/<file stem>
    seeds: list[int] = field(default_factory=lambda: [0])
    overrides: list[str] = field(default_factory=list)  # key=value for every variant
    eval_frames: list[int] = field(default_factory=list)  # re-test best checkpoints at these
    pretraining: list[PretrainingSpec] = field(default_factory=list)  # runs to start from
    sections: list[SectionSpec] = field(default_factory=list)


# How an error names the part of the file a bad key sits in.
PARTS = {
    SuiteFile: "the suite",
    SectionSpec: "a section",
    VariantSpec: "a variant",
    PretrainingSpec: "a pretraining run",
}


@dataclass
class Suite:
    """A suite ready to run: paths resolved, each variant once, sections by title."""

    name: str
    folder: Path  # the suite file's folder: variant config paths are relative to it
    base: Path | None
    output_dir: Path
    seeds: list[int]
    overrides: list[str]
    eval_frames: list[int]
    variants: list[VariantSpec]
    sections: dict[str, list[str]]  # title -> variant names; a variant may sit in several
    notes: str = ""
    pretraining: list[PretrainingSpec] = field(default_factory=list)

    def _load(self, what: str, file: str | None, overrides: list[str]) -> Config:
        config = self.folder / file if file is not None else self.base
        try:
            return load_config(config, [*self.overrides, *overrides])
        except ConfigError as error:
            raise ConfigError(f"suite {what}: {error}") from error

    def resolve(self, variant: VariantSpec, seed: int) -> Config:
        """The full config of one run: base or variant file, suite then variant overrides."""
        start = []
        if variant.init_from is not None:
            named = {spec.name: spec for spec in self.pretraining}
            source = named.get(variant.init_from)
            path = (
                pretraining_runs.checkpoint_of(self.output_dir, source)
                if source is not None
                else self.folder / variant.init_from
            )
            start = [f"model.init_from={path}"]
        overrides = [
            *variant.overrides,
            *start,
            f"trainer.seed={seed}",
            f"run.output_dir={self.output_dir / variant.name}",
            f"run.name=seed{seed}",
        ]
        return self._load(f"variant {variant.name!r}", variant.config, overrides)

    def resolve_pretraining(self, spec: PretrainingSpec) -> Config:
        """A pretraining run's config: the suite's first seed, in its own folder."""
        folder = pretraining_runs.run_folder(self.output_dir, spec)
        overrides = [
            *spec.overrides,
            f"trainer.seed={self.seeds[0]}",
            f"run.output_dir={folder.parent}",
            f"run.name={spec.name}",
        ]
        return self._load(f"pretraining run {spec.name!r}", spec.config, overrides)


def read_suite_file(path: Path) -> SuiteFile:
    """The file merged over the `SuiteFile` schema: a wrong key or type is one line."""
    if not path.is_file():
        raise ConfigError(f"suite file not found: {path}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(SuiteFile), OmegaConf.load(path))
        spec = OmegaConf.to_object(merged)
    except ConfigKeyError as error:
        schema = error.object_type
        valid = ", ".join(f.name for f in dataclasses.fields(schema)) if schema in PARTS else ""
        raise ConfigError(
            f"suite {path}: unknown key {error.key!r} in {PARTS.get(schema, 'the suite')};"
            f" valid keys: {valid}"
        ) from error
    except OmegaConfBaseException as error:
        where = f"key {error.full_key!r}: " if error.full_key else ""
        raise ConfigError(f"suite {path}: {where}{str(error).splitlines()[0]}") from error
    except Exception as error:  # a YAML syntax error names the file and line
        raise ConfigError(f"cannot read suite {path}: {str(error).splitlines()[0]}") from error
    assert isinstance(spec, SuiteFile)
    return spec


def load_suite(path: str | Path, extra_overrides: list[str] | None = None) -> Suite:
    """Read a suite and resolve every variant's config, so mistakes surface before training."""
    path = Path(path)
    spec = read_suite_file(path)
    if not any(section.variants for section in spec.sections):
        raise ConfigError(f"suite {path}: needs a 'sections' list of variants")
    if not spec.seeds:
        raise ConfigError(f"suite {path}: 'seeds' is empty; give at least one seed")
    variants: dict[str, VariantSpec] = {}
    sections: dict[str, list[str]] = {}
    for section in spec.sections:
        names = sections.setdefault(section.title, [])
        for variant in section.variants:
            # The seed's tables repeat rows: the same name is one run, shown in each table.
            if variants.setdefault(variant.name, variant) != variant:
                raise ConfigError(
                    f"suite {path} variant {variant.name!r}: the name is used again for another"
                    " config"
                )
            names.append(variant.name)
    stages = {p.name: p.stage for p in spec.pretraining}
    for pretraining in spec.pretraining:
        if pretraining.stage not in pretraining_runs.STAGES:
            raise ConfigError(
                f"suite {path} pretraining run {pretraining.name!r}: stage"
                f" {pretraining.stage!r} is not one of: {', '.join(pretraining_runs.STAGES)}"
            )
    for variant in variants.values():
        start = variant.init_from
        if start is not None and start not in stages and not (path.parent / start).is_file():
            raise ConfigError(
                f"suite {path} variant {variant.name!r}: init_from {start!r} is neither a"
                f" pretraining run of the suite ({', '.join(stages) or 'none'}) nor a file"
            )
    suite = Suite(
        name=spec.name or path.stem,
        folder=path.parent,
        base=path.parent / spec.base if spec.base is not None else None,
        output_dir=Path(spec.output_dir or f"runs/ablations/{path.stem}"),
        seeds=spec.seeds,
        overrides=[*spec.overrides, *(extra_overrides or [])],
        eval_frames=spec.eval_frames,
        variants=list(variants.values()),
        sections=sections,
        notes=spec.notes.strip(),
        pretraining=spec.pretraining,
    )
    for variant in suite.variants:
        suite.resolve(variant, suite.seeds[0])
    for pretraining in suite.pretraining:
        suite.resolve_pretraining(pretraining)
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


def run_variant(suite: Suite, variant: VariantSpec, seed: int) -> dict[str, Any]:
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
        "init_from": variant.init_from,
        "series": variant.series,
        "label_fraction": config.data.label_fraction,
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
    if index == 0:
        alive = pretraining_runs.heartbeat(suite.output_dir) if suite.pretraining else nullcontext()
        with alive:
            pretrained = [
                pretraining_runs.run_pretraining(
                    spec, suite.resolve_pretraining(spec), suite.output_dir
                )
                for spec in suite.pretraining
            ]
    else:
        pretrained = pretraining_runs.wait_for(suite.pretraining, suite.output_dir)
    jobs = [(v, seed) for v in suite.variants for seed in (v.seeds or suite.seeds)]
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
        if pretrained:
            table += "\n" + "\n".join(pretraining_runs.markdown_rows(pretrained))
        (folder / "results.md").write_text(table)
        plot_suite(results, suite.sections, folder)
    return (report_dir or suite.output_dir) / "results.md"
