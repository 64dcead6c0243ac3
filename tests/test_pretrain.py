"""Masked pretraining runs on a tiny synthetic set, and fine-tuning from their checkpoints."""

import subprocess
import sys

import pytest
import torch
from conftest import tiny_overrides

from convperceiver.config import load_config
from convperceiver.engine.pretrain import pretrain
from convperceiver.engine.train import initial_model, train
from convperceiver.errors import ConfigError


@pytest.fixture(scope="module")
def synthetic_root(tiny_synthetic_root):
    """The session's tiny synthetic set: these tests only read it."""
    return tiny_synthetic_root


@pytest.fixture(scope="module")
def pretrained(synthetic_root, tmp_path_factory):
    output = tmp_path_factory.mktemp("pretrain")
    overrides = tiny_overrides(
        synthetic_root, output, "masked", "trainer.max_epochs=2", "pretrain.recon_clips=2"
    )
    return pretrain(load_config(None, overrides))


def fine_tune_config(root, output, checkpoint, *extra):
    """The tiny config, started from `checkpoint`."""
    overrides = tiny_overrides(root, output, "finetune", f"model.init_from={checkpoint}", *extra)
    return load_config(None, overrides)


def test_pretraining_leaves_checkpoints_pictures_logs_and_config(pretrained):
    run = pretrained.run_dir
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert pretrained.best_checkpoint == run / "checkpoints" / "best.ckpt"
    assert sorted(p.name for p in (run / "reconstructions").glob("*.png")) == [
        "epoch_000.png",
        "epoch_001.png",
    ]
    assert (run / "config.yaml").is_file() and (run / "curves.png").is_file()
    assert {"train/loss_epoch", "val/loss", "val/pixel_loss"} <= set(pretrained.metrics)
    assert pretrained.metrics["val/loss"] > 0


def test_the_checkpoint_holds_encoder_and_decoder_but_no_head(pretrained):
    state = torch.load(pretrained.best_checkpoint, map_location="cpu", weights_only=True)
    keys = state["state_dict"]
    assert any(k.startswith("model.encoder.backbone.") for k in keys)
    assert any(k.startswith("model.decoder.") for k in keys)
    assert not any(k.startswith("model.encoder.fc.") for k in keys)
    assert state["hyper_parameters"]["run_config"]["pretrain"]["mask_ratio"] == 0.75


def test_fine_tuning_starts_from_the_pretrained_encoder(pretrained, synthetic_root, tmp_path):
    """Before the first optimizer step, every encoder tensor is the checkpoint's."""
    config = fine_tune_config(
        synthetic_root, tmp_path, pretrained.best_checkpoint, "trainer.seed=7"
    )
    model = initial_model(config, num_classes=4)
    saved = torch.load(pretrained.best_checkpoint, map_location="cpu", weights_only=True)
    encoder = {
        k.removeprefix("model.encoder."): v
        for k, v in saved["state_dict"].items()
        if k.startswith("model.encoder.")
    }
    state = model.state_dict()
    assert set(encoder) == set(state) - {"fc.weight", "fc.bias"}
    for name, tensor in encoder.items():
        assert torch.equal(state[name], tensor), name
    scratch = initial_model(load_config(None, tiny_overrides(synthetic_root, tmp_path, "s")), 4)
    assert not torch.equal(scratch.state_dict()["latents"], state["latents"])


def test_pretrain_then_fine_tune_end_to_end(pretrained, synthetic_root, tmp_path, caplog):
    last = pretrained.run_dir / "checkpoints" / "last.ckpt"
    config = fine_tune_config(
        synthetic_root, tmp_path, last, "trainer.max_epochs=1", "optim.layer_decay=0.75"
    )
    with caplog.at_level("INFO", logger="convperceiver"):
        result = train(config)
    assert result.metrics["num_videos"] > 0
    loaded = [r.getMessage() for r in caplog.records if "init_from" in r.getMessage()]
    assert len(loaded) == 1 and "skipped 2" in loaded[0]  # the new head's weight and bias


def test_unlabelled_videos_cannot_train_a_classifier(synthetic_root, tmp_path):
    config = load_config(
        None,
        tiny_overrides(synthetic_root / "videos", tmp_path, "x", "data.dataset=videos"),
    )
    with pytest.raises(ConfigError, match="has no labels"):
        train(config)


def test_pretraining_on_a_folder_of_unlabelled_videos(synthetic_root, tmp_path):
    overrides = tiny_overrides(
        synthetic_root / "videos",
        tmp_path,
        "unlabelled",
        "data.dataset=videos",
        "trainer.max_epochs=1",
        "pretrain.recon_clips=0",
    )
    result = pretrain(load_config(None, overrides))
    assert (result.run_dir / "checkpoints" / "last.ckpt").is_file()
    assert not (result.run_dir / "reconstructions").exists()


def test_ddp_pretraining_with_two_processes(synthetic_root, tmp_path):
    overrides = tiny_overrides(
        synthetic_root,
        tmp_path,
        "ddp",
        "trainer.max_epochs=1",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.strategy=ddp",
        "pretrain.recon_clips=1",
    )
    completed = subprocess.run(
        [sys.executable, "-m", "convperceiver.cli", "pretrain", *overrides],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    run = tmp_path / "ddp"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert (run / "reconstructions" / "epoch_000.png").is_file()


def test_evaluating_a_pretraining_checkpoint_says_how_to_use_it(pretrained, capsys):
    from convperceiver.cli import main

    assert main(["evaluate", "--checkpoint", str(pretrained.best_checkpoint)]) == 2
    message = capsys.readouterr().err.strip()
    assert "a pretraining checkpoint" in message and "model.init_from=" in message
    assert len(message.splitlines()) == 1
