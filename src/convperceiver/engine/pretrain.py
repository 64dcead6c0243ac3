"""`convperceiver pretrain`: masked video modelling for a config's model, as a run.

A pretraining run folder holds what a training run's does (`config.yaml`, `checkpoints/`
with `best.ckpt` by validation loss and `last.ckpt` every epoch, CSV and TensorBoard logs,
`curves.png`) plus `reconstructions/epoch_NNN.png`. Labels are ignored: any dataset kind
works, and so does `data.dataset=videos`, a folder of unlabelled videos. Fine-tune from it with
`convperceiver train model.init_from=<run>/checkpoints/last.ckpt`.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint

from convperceiver.config import Config, to_dict
from convperceiver.data.datamodule import VideoDataModule
from convperceiver.data.eval_clips import eval_clip_spec
from convperceiver.engine.callbacks import ClipThroughput
from convperceiver.engine.pretrain_module import MaskedPretrainingModule
from convperceiver.engine.reports import plot_curves
from convperceiver.engine.train import RunResult, fitting_trainer, resolve_run
from convperceiver.errors import ConfigError
from convperceiver.models.backbone import build_backbone
from convperceiver.models.init_from import load_init_weights
from convperceiver.models.pretraining import build_pretraining_model, token_grid

MONITOR = "val/loss"


def build_pretraining_module(config: Config, run_dir: Path | None) -> MaskedPretrainingModule:
    """The model with its decoder (and teacher), and the module that trains it."""
    pretrain, trainer, data = config.pretrain, config.trainer, config.data
    # A clip must split into whole tubes: say so now, in one line, not at the first batch.
    for frames in {data.num_frames, eval_clip_spec(data, config.eval).num_frames}:
        _, height, _ = token_grid(config.model, frames, data.crop_size, data.crop_size)
        if height % pretrain.mask_block:
            raise ConfigError(
                f"pretrain.mask_block={pretrain.mask_block} does not divide the {height}x{height}"
                " token grid of the configured crop"
            )
    teacher = None
    if pretrain.target == "pixels+teacher":
        # The teacher is the same CNN with the config's weights, frozen: its features are the
        # second target (for example Kinetics features, distilled into a masked student).
        teacher = build_backbone(cnn_blocks=config.model.cnn_blocks, weights=config.model.weights)
    model = build_pretraining_model(
        config.model,
        mask_ratio=pretrain.mask_ratio,
        mask_block=pretrain.mask_block,
        decoder_dim=pretrain.decoder_dim,
        decoder_depth=pretrain.decoder_depth,
        decoder_heads=pretrain.decoder_heads,
        normalize_target=pretrain.normalize_target,
        teacher=teacher,
        teacher_weight=pretrain.teacher_weight,
    )
    if config.model.init_from:
        # Pretraining can start from any checkpoint of ours too: a classifier, or itself.
        load_init_weights(model.encoder, config.model.init_from)
    return MaskedPretrainingModule(
        model=model,
        mean=config.data.mean,
        std=config.data.std,
        optim=config.optim,
        channels_last=trainer.channels_last,
        fused_optimizer=not (trainer.precision == "16-mixed" and trainer.gradient_clip_val > 0),
        recon_clips=pretrain.recon_clips,
        figure_dir=str(run_dir) if run_dir else None,
        run_config=to_dict(config),
    )


def pretrain(config: Config) -> RunResult:
    """Fit the masked model; keep the best (validation loss) and last checkpoints."""
    run_dir, resume_from = resolve_run(config, stage="pretrain")
    pl.seed_everything(config.trainer.seed, workers=True, verbose=False)
    module = build_pretraining_module(config, run_dir)
    datamodule = VideoDataModule(config.data, config.eval, seed=config.trainer.seed)
    datamodule.prepare_data()
    datamodule.setup()
    checkpoints = run_dir / "checkpoints"
    best = ModelCheckpoint(
        dirpath=checkpoints,
        filename="best",
        monitor=MONITOR,
        mode="min",
        auto_insert_metric_name=False,
        enable_version_counter=False,
    )
    last = ModelCheckpoint(dirpath=checkpoints, filename="last", enable_version_counter=False)
    throughput = ClipThroughput()
    callbacks = [best, last, throughput, LearningRateMonitor(logging_interval="epoch")]
    trainer = fitting_trainer(config, run_dir, callbacks)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from, weights_only=True)
    metrics = {
        name: float(value)
        for name, value in trainer.callback_metrics.items()
        if name.startswith(("train/", "val/")) and value.numel() == 1
    }
    if trainer.is_global_zero:
        plot_curves(run_dir / "csv", run_dir / "curves.png")
    return RunResult(
        run_dir,
        metrics,
        Path(best.best_model_path) if best.best_model_path else None,
        throughput.clips_per_second(),
    )
