"""Training and evaluation runs: run folders, Lightning's Trainer, checkpoints, reports.

A run folder holds `config.yaml` (the resolved config), `checkpoints/best.ckpt` and
`last.ckpt`, CSV and TensorBoard logs, `test_metrics.json`, the confusion matrix, the
per-video `predictions.csv` and the curves. Checkpoints carry the config and class names in
their hyper-parameters, so `evaluate` and `predict` need nothing else (`checkpoint.py`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from convperceiver.config import Config, load_config, save_config, to_dict
from convperceiver.data.datamodule import VideoDataModule
from convperceiver.engine.callbacks import ClipThroughput
from convperceiver.engine.checkpoint import load_checkpoint
from convperceiver.engine.module import VideoClassifierModule
from convperceiver.engine.reports import plot_curves, write_evaluation, write_predictions
from convperceiver.errors import ConfigError, DatasetError
from convperceiver.models import FreezableClassifier, build_model
from convperceiver.models.init_from import load_init_weights
from convperceiver.models.runtime import training_precision

log = logging.getLogger(__name__)

MONITOR = "val/video_top1"


@dataclass
class RunResult:
    run_dir: Path
    metrics: dict[str, float]
    best_checkpoint: Path | None
    throughput: dict[str, float] = field(default_factory=dict)  # train/test clips per second


def variant_name(config: Config) -> str:
    model = config.model
    if model.arch == "baseline":
        return "baseline"
    name = f"k{model.cnn_blocks}"
    if model.cross_blocks:
        name += f"_cross{model.cross_blocks}"
    if model.self_blocks:
        name += f"_self{model.self_blocks * max(1, model.cross_blocks)}"
    return name


def resolve_run(config: Config, *, stage: str = "train") -> tuple[Path, Path | None]:
    """The run folder and the checkpoint to resume from, if any.

    A run without `run.name` is `<dataset>_<variant>[_pretrain]_<time>`; `run.resume=last`
    takes the newest of the same stage.
    """
    output = Path(config.run.output_dir)
    prefix = f"{config.data.dataset}_{variant_name(config)}" + (
        "" if stage == "train" else f"_{stage}"
    )
    resume = config.run.resume
    if resume and resume != "last":
        checkpoint = Path(resume)
        if not checkpoint.is_file():
            raise ConfigError(f"run.resume: checkpoint not found: {checkpoint}")
        return checkpoint.parent.parent, checkpoint
    if resume == "last":
        candidates = (
            [output / config.run.name]
            if config.run.name
            else sorted(
                output.glob(f"{prefix}_2*"),
                key=lambda p: p.stat().st_mtime,
            )
        )
        found = [d for d in candidates if (d / "checkpoints" / "last.ckpt").is_file()]
        if not found:
            where = candidates[0] if config.run.name else output
            raise ConfigError(f"run.resume=last: no checkpoints/last.ckpt under {where}")
        return found[-1], found[-1] / "checkpoints" / "last.ckpt"
    name = config.run.name or f"{prefix}_{time.strftime('%Y%m%d-%H%M%S')}"
    run_dir = output / name
    if (run_dir / "checkpoints").exists():
        raise ConfigError(
            f"{run_dir} already holds a run: pass run.resume=last to continue it, "
            "or choose another run.name"
        )
    return run_dir, None


def initial_model(config: Config, num_classes: int, *, init: bool = True) -> FreezableClassifier:
    """The classifier a run starts from: `model.weights`, then `model.init_from` over them."""
    model = build_model(config.model, num_classes=num_classes)
    if init and config.model.init_from:
        load_init_weights(model, config.model.init_from)
    return model


def build_module(
    model: FreezableClassifier, config: Config, class_names: Sequence[str]
) -> VideoClassifierModule:
    """The LightningModule for a run: what it needs from the config, resolved here once."""
    trainer = config.trainer
    return VideoClassifierModule(
        model=model,
        class_names=class_names,
        mean=config.data.mean,
        std=config.data.std,
        optim=config.optim,
        label_smoothing=config.optim.label_smoothing,
        aggregate=config.eval.aggregate,
        channels_last=trainer.channels_last,
        # fp16 loss scaling cannot clip gradients before a fused step unscales them.
        fused_optimizer=not (trainer.precision == "16-mixed" and trainer.gradient_clip_val > 0),
        run_config=to_dict(config),
    )


def fitting_trainer(config: Config, run_dir: Path, callbacks: list[pl.Callback]) -> pl.Trainer:
    """The Trainer of a training or pretraining run, with the resolved config saved beside it."""
    trainer = make_trainer(
        config,
        run_dir,
        max_epochs=config.trainer.max_epochs,
        accumulate_grad_batches=config.trainer.accumulate_grad_batches,
        gradient_clip_val=config.trainer.gradient_clip_val or None,
        log_every_n_steps=config.trainer.log_every_n_steps,
        check_val_every_n_epoch=config.trainer.val_every_n_epochs,
        callbacks=callbacks,
        logger=[CSVLogger(run_dir, name="csv"), TensorBoardLogger(run_dir, name="tensorboard")],
    )
    if trainer.is_global_zero:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
    return trainer


def make_trainer(config: Config, run_dir: Path | None, **kwargs: Any) -> pl.Trainer:
    trainer = config.trainer
    devices: Any = trainer.devices
    if devices != "auto" and "," not in devices:
        devices = int(devices)
    precision = training_precision(trainer.precision, trainer.accelerator)
    if precision != trainer.precision:
        log.info("trainer.precision=%s: %s", trainer.precision, precision)
    return pl.Trainer(
        accelerator=trainer.accelerator,
        devices=devices,
        num_nodes=trainer.num_nodes,
        strategy=trainer.strategy,
        precision=precision,
        deterministic=trainer.deterministic,
        enable_progress_bar=config.run.progress_bar,
        default_root_dir=run_dir,
        **kwargs,
    )


def train(config: Config) -> RunResult:
    """Fit, keep the best and last checkpoints, then test the best one once."""
    run_dir, resume_from = resolve_run(config)
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    datamodule = VideoDataModule(config.data, config.eval, seed=config.trainer.seed)
    datamodule.prepare_data()
    datamodule.setup()
    if not datamodule.class_names:
        raise ConfigError(
            f"data.dataset={config.data.dataset} has no labels to train a classifier on: "
            "pretrain on it with `convperceiver pretrain`"
        )
    # A resumed run's weights come from its own checkpoint, not from model.init_from.
    model = initial_model(config, len(datamodule.class_names), init=resume_from is None)
    module = build_module(model, config, datamodule.class_names)
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        filename="best",
        monitor=MONITOR,
        mode="max",
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    # Lightning's save_last only follows an improvement of the monitor: resume needs every epoch.
    last = ModelCheckpoint(
        dirpath=run_dir / "checkpoints", filename="last", enable_version_counter=False
    )
    throughput = ClipThroughput()
    callbacks: list[pl.Callback] = [
        checkpoint,
        last,
        throughput,
        LearningRateMonitor(logging_interval="epoch"),
    ]
    if config.trainer.early_stopping_patience:
        callbacks.append(
            EarlyStopping(
                monitor=MONITOR, mode="max", patience=config.trainer.early_stopping_patience
            )
        )
    trainer = fitting_trainer(config, run_dir, callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else None
    test_loader = datamodule.test_dataloader()
    trainer.test(
        module,
        dataloaders=test_loader,
        ckpt_path=str(best) if best else None,
        weights_only=True,
        verbose=False,
    )
    metrics: dict[str, float] = {}
    if trainer.is_global_zero:
        metrics = _write_reports(module, test_loader.dataset.records, run_dir, stage="test")
        plot_curves(run_dir / "csv", run_dir / "curves.png")
    return RunResult(run_dir, metrics, best, throughput.clips_per_second())


def _write_reports(
    module: VideoClassifierModule, records: Sequence[Any], folder: Path, *, stage: str
) -> dict[str, float]:
    """Metrics, confusion matrix and per-video predictions of the module's last test."""
    if "test" not in module.last_result:
        raise DatasetError(f"no {stage} video could be decoded: there is nothing to evaluate")
    result = module.last_result["test"]
    metrics = write_evaluation(result, module.class_names, folder, stage=stage)
    write_predictions(
        result, [str(r.path) for r in records], module.class_names, folder / "predictions.csv"
    )
    return metrics


def model_from_checkpoint(
    path: str | Path, overrides: list[str] | None = None, config_path: str | Path | None = None
) -> tuple[FreezableClassifier, Config, list[str]]:
    """The trained model, its config (with overrides applied) and its class names."""
    saved = load_checkpoint(path)
    config = load_config(config_path, overrides or [], base=saved.config)
    model_config = dataclasses.replace(config.model, weights="none")
    model = build_model(model_config, num_classes=len(saved.class_names))
    model.load_state_dict(saved.model_state)
    return model.eval(), config, saved.class_names


def checkpoint_with_data(
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    config_path: str | Path | None = None,
) -> tuple[FreezableClassifier, Config, list[str], VideoDataModule]:
    """The trained model, its config and class names, and its dataset set up and checked."""
    model, config, class_names = model_from_checkpoint(checkpoint, overrides, config_path)
    datamodule = VideoDataModule(config.data, config.eval, seed=config.trainer.seed)
    datamodule.prepare_data()
    datamodule.setup()
    if datamodule.class_names != class_names:
        raise ConfigError(
            f"the dataset's {len(datamodule.class_names)} classes differ from the checkpoint's "
            f"{len(class_names)}"
        )
    return model, config, class_names, datamodule


def evaluate(
    checkpoint: str | Path,
    overrides: list[str] | None = None,
    *,
    config_path: str | Path | None = None,
    out: Path | None = None,
    split: str = "test",
) -> RunResult:
    """Evaluate a checkpoint on its test (or validation) videos, as at the end of training.

    Writes `<split>_metrics.json`, the confusion matrix, `predictions.csv` (one row per video)
    and the config into `out` (default: a new folder beside the checkpoint's run).
    """
    model, config, class_names, datamodule = checkpoint_with_data(
        checkpoint, overrides, config_path
    )
    module = build_module(model, config, class_names)
    trainer = make_trainer(config, None, logger=False)
    loader = datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    trainer.test(module, dataloaders=loader, verbose=False)
    folder = (
        out
        or Path(checkpoint).resolve().parent.parent / f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    metrics: dict[str, float] = {}
    if trainer.is_global_zero:
        metrics = _write_reports(module, loader.dataset.records, folder, stage=split)
        save_config(config, folder / "config.yaml")
    return RunResult(run_dir=folder, metrics=metrics, best_checkpoint=Path(checkpoint))
