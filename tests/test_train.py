"""End-to-end runs on a tiny synthetic set: train, checkpoints, resume, evaluate, predict, DDP."""

import csv
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import tiny_overrides
from data_fixtures import SHARED_VIDEOS

from convperceiver.cli import main
from convperceiver.config import load_config, to_dict
from convperceiver.engine.checkpoint import load_checkpoint
from convperceiver.engine.train import evaluate, model_from_checkpoint, train


@pytest.fixture(scope="module")
def trained_run(tiny_synthetic_root, tmp_path_factory):
    output = tmp_path_factory.mktemp("runs")
    config = load_config(None, tiny_overrides(tiny_synthetic_root, output, "run"))
    return train(config)


def epoch_rows(run_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(run_dir.glob("csv/*/metrics.csv")):
        with open(path, newline="") as handle:
            rows += [row for row in csv.DictReader(handle) if row.get("train/loss_epoch")]
    return rows


def test_training_leaves_checkpoints_logs_config_and_reports(trained_run):
    run_dir = trained_run.run_dir
    for name in (
        "config.yaml",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
        "test_metrics.json",
        "test_confusion_matrix.csv",
        "test_confusion_matrix.png",
        "curves.png",
    ):
        assert (run_dir / name).is_file(), name
    assert list(run_dir.glob("tensorboard/*/events.out.tfevents.*"))
    saved = load_config(run_dir / "config.yaml")
    assert saved.model.cnn_blocks == 2 and saved.trainer.max_epochs == 3
    metrics = json.loads((run_dir / "test_metrics.json").read_text())
    assert metrics == trained_run.metrics
    assert metrics["num_videos"] == 4 * 2  # 2 test videos per class in the tiny set


def test_training_loss_falls(trained_run):
    losses = [float(row["train/loss_epoch"]) for row in epoch_rows(trained_run.run_dir)]
    assert len(losses) == 3
    assert losses[-1] < losses[0]


def test_training_logs_data_problems_and_throughput(trained_run):
    rows = epoch_rows(trained_run.run_dir)
    assert [float(row["data/substituted_videos"]) for row in rows] == [0.0, 0.0, 0.0]
    assert set(trained_run.throughput) == {"train_clips_per_s", "test_clips_per_s"}
    assert min(trained_run.throughput.values()) > 0


def test_checkpoint_carries_config_and_class_names_as_hyperparameters(trained_run):
    path = trained_run.run_dir / "checkpoints" / "best.ckpt"
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert "convperceiver" not in raw
    assert raw["hyper_parameters"]["run_config"]["model"]["cnn_blocks"] == 2
    saved = load_checkpoint(path)
    assert saved.class_names == sorted(saved.class_names) and len(saved.class_names) == 4
    assert saved.config == raw["hyper_parameters"]["run_config"]
    assert "latents" in saved.model_state
    assert not any(key.startswith("model.") for key in saved.model_state)


def old_format(config: dict) -> dict:
    """A config as checkpoints saved it before data.synthetic and the None defaults."""
    config = {section: dict(values) for section, values in config.items() if section != "pretrain"}
    synthetic = config["data"].pop("synthetic")
    config["data"].update({f"synth_{key}": value for key, value in synthetic.items()})
    for section, key in [("model", "init_from"), ("optim", "layer_decay")]:
        del config[section][key]
    for key in ("classes", "label_fraction", "decoder"):
        del config["data"][key]
    config["data"]["annotations"] = ""
    config["eval"].update(num_frames=0, clip_duration=0.0)
    config["optim"]["cnn_lr"] = 0.0
    return config


def test_a_checkpoint_of_the_old_layout_still_loads(trained_run, tmp_path):
    new_path = trained_run.run_dir / "checkpoints" / "best.ckpt"
    raw = torch.load(new_path, map_location="cpu", weights_only=True)
    hparams = raw["hyper_parameters"]
    old_config = old_format(hparams["run_config"])
    assert old_config["data"]["synth_classes"] == 4
    old_path = tmp_path / "old.ckpt"
    torch.save(
        {
            "state_dict": raw["state_dict"],
            "convperceiver": {"config": old_config, "class_names": hparams["class_names"]},
        },
        old_path,
    )
    model, config, class_names = model_from_checkpoint(old_path)
    reference, reference_config, _ = model_from_checkpoint(new_path)
    assert to_dict(config) == to_dict(reference_config)
    assert config.data.synthetic.classes == 4 and config.data.synthetic.size == 32
    assert config.eval.num_frames is None and config.eval.clip_duration is None
    assert config.optim.cnn_lr is None and config.data.annotations is None
    assert class_names == hparams["class_names"]
    clip = torch.randn(1, 3, 4, 28, 28)
    torch.testing.assert_close(model(clip), reference(clip))


def test_evaluate_reproduces_the_end_of_training_metrics(trained_run, tmp_path):
    result = evaluate(trained_run.best_checkpoint, ["run.progress_bar=false"], out=tmp_path)
    for key, value in trained_run.metrics.items():
        assert result.metrics[key] == pytest.approx(value, abs=1e-6), key
    assert (tmp_path / "test_metrics.json").is_file()
    with open(tmp_path / "predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == [
        "path",
        "label",
        "prediction",
        *[f"top{rank}_{what}" for rank in range(1, 5) for what in ("class", "prob")],
    ]
    assert len(rows) == 8 and len({row["path"] for row in rows}) == 8
    for row in rows:
        assert Path(row["path"]).parent.name == row["label"]  # <class>/<video>.avi
        assert row["prediction"] == row["top1_class"]
        probabilities = [float(row[f"top{rank}_prob"]) for rank in range(1, 5)]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    correct = sum(row["prediction"] == row["label"] for row in rows)
    assert correct / len(rows) == pytest.approx(result.metrics["video_top1"])


def test_same_seed_same_metrics(tiny_synthetic_root, trained_run, tmp_path):
    config = load_config(None, tiny_overrides(tiny_synthetic_root, tmp_path, "again"))
    again = train(config)
    assert again.metrics == trained_run.metrics
    first = [row["train/loss_epoch"] for row in epoch_rows(trained_run.run_dir)]
    assert [row["train/loss_epoch"] for row in epoch_rows(again.run_dir)] == first


def test_a_fixed_run_name_is_never_overwritten(tiny_synthetic_root, trained_run):
    overrides = tiny_overrides(tiny_synthetic_root, trained_run.run_dir.parent, "run")
    assert main(["train", *overrides]) == 2


def test_predict_real_clips_and_a_broken_file(trained_run, tiny_synthetic_root, tmp_path, capsys):
    videos = sorted(SHARED_VIDEOS.glob("*.mp4"))[:2] if SHARED_VIDEOS.is_dir() else []
    if not videos:
        videos = sorted(tiny_synthetic_root.glob("videos/*/*.avi"))[:2]
    broken = tmp_path / "broken.avi"
    broken.write_text("not a video")
    code = main(
        [
            "predict",
            "--checkpoint",
            str(trained_run.best_checkpoint),
            "--json",
            "--topk",
            "3",
            *map(str, videos),
            str(broken),
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0
    predictions = json.loads(out)
    assert [p["path"] for p in predictions] == [*map(str, videos), str(broken)]
    for prediction in predictions[:-1]:
        probabilities = [top["probability"] for top in prediction["top"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) <= 1 + 1e-6
    assert "error" in predictions[-1] and "broken.avi" in err


def test_predict_exits_1_when_nothing_could_be_read(trained_run, tmp_path, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert main(["predict", "--checkpoint", str(trained_run.best_checkpoint), str(empty)]) == 1
    assert "empty.mp4" in capsys.readouterr().err


def test_evaluate_errors_are_one_line(tmp_path, capsys):
    assert main(["evaluate", "--checkpoint", str(tmp_path / "none.ckpt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    not_ours = tmp_path / "other.ckpt"
    torch.save({"state_dict": {}}, not_ours)
    assert main(["evaluate", "--checkpoint", str(not_ours)]) == 2
    assert "not a convperceiver checkpoint" in capsys.readouterr().err


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "convperceiver.cli", *args]


def test_killed_run_resumes_where_it_stopped(tiny_synthetic_root, tmp_path):
    overrides = tiny_overrides(tiny_synthetic_root, tmp_path, "killed", "trainer.max_epochs=40")
    process = subprocess.Popen(
        cli("train", *overrides), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    last = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 120
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    interrupted = torch.load(last, weights_only=True)  # never half-written
    epoch, step = interrupted["epoch"], interrupted["global_step"]
    assert epoch < 39  # killed before its last epoch
    steps_per_epoch = step // (epoch + 1)

    resumed = load_config(None, [*overrides, "run.resume=last", f"trainer.max_epochs={epoch + 2}"])
    result = train(resumed)
    final = torch.load(result.run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == epoch + 1
    assert final["global_step"] == step + steps_per_epoch
    optimizer_steps = final["optimizer_states"][0]["state"][0]["step"]
    assert int(optimizer_steps) == step + steps_per_epoch


def test_ddp_evaluation_counts_every_video_once(trained_run, tmp_path):
    """2 gloo processes on 8 test videos x 2 clips x 3 crops: a clip's crops straddle ranks.

    DDP padding (repeated items) is exercised in test_metrics, on the metric itself.
    """
    checkpoint = str(trained_run.best_checkpoint)
    outputs = {}
    for devices in (1, 2):
        out = tmp_path / f"devices{devices}"
        completed = subprocess.run(
            cli(
                "evaluate",
                "--checkpoint",
                checkpoint,
                "--out",
                str(out),
                "--json",
                "trainer.accelerator=cpu",
                f"trainer.devices={devices}",
                "trainer.strategy=" + ("ddp" if devices == 2 else "auto"),
                "data.batch_size=5",
                "eval.three_crop=true",
            ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        outputs[devices] = json.loads((out / "test_metrics.json").read_text())
    assert outputs[2]["num_videos"] == outputs[1]["num_videos"] == 8
    assert outputs[2]["num_clips"] == outputs[1]["num_clips"] == 8 * 2 * 3
    assert outputs[2] == pytest.approx(outputs[1], abs=1e-5)


def test_predict_in_bf16_gives_the_fp32_probabilities_to_bf16_precision(
    trained_run, tiny_synthetic_root, capsys
):
    video = sorted(tiny_synthetic_root.glob("videos/*/*.avi"))[0]
    probabilities = {}
    for amp in ("off", "bf16"):
        argv = ["predict", "--checkpoint", str(trained_run.best_checkpoint), "--json"]
        assert main([*argv, "--amp", amp, "--topk", "10", str(video)]) == 0
        (prediction,) = json.loads(capsys.readouterr().out)
        probabilities[amp] = {top["label"]: top["probability"] for top in prediction["top"]}
    assert probabilities["off"].keys() == probabilities["bf16"].keys()
    for label, fp32 in probabilities["off"].items():
        assert probabilities["bf16"][label] == pytest.approx(fp32, abs=0.03)
    assert probabilities["off"] != probabilities["bf16"]  # bf16 did run


@pytest.mark.parametrize(("native", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_precision_is_bf16_only_where_the_cpu_has_it(native, expected, monkeypatch, caplog):
    from convperceiver.engine.train import make_trainer
    from convperceiver.models import runtime

    monkeypatch.setattr(runtime, "bf16_supported", lambda device: native and device.type == "cpu")
    caplog.set_level(logging.INFO, logger="convperceiver")
    config = load_config(None, ["trainer.accelerator=cpu", "trainer.precision=auto"])
    assert make_trainer(config, None).precision == expected
    assert f"trainer.precision=auto: {expected.removesuffix('-true')}" in caplog.text
    # A precision asked for by name is kept whatever the device has.
    config = load_config(None, ["trainer.accelerator=cpu", "trainer.precision=32"])
    assert make_trainer(config, None).precision == "32-true"
