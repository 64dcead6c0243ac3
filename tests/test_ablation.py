import csv
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from conftest import tiny_overrides

from convperceiver.cli import main
from convperceiver.errors import ConfigError
from convperceiver.experiments import ablation, pretraining_runs


def suite_overrides(folder: Path, root: Path) -> list[str]:
    """The tiny config for every run of a suite: one epoch, run folders left to the suite."""
    overrides = [o for o in tiny_overrides(root, folder, "x") if not o.startswith("run.")]
    overrides = [o for o in overrides if not o.startswith("trainer.max_epochs")]
    return [*overrides, "trainer.max_epochs=1", "run.progress_bar=false"]


def write_suite(folder: Path, root: Path, *, variant_override: str = "model.self_blocks=0") -> Path:
    suite = folder / "suite.yaml"
    lines = [
        "name: tiny suite",
        "notes: two variants on a tiny synthetic set",
        f"output_dir: {folder / 'out'}",
        "seeds: [0]",
        "eval_frames: [2, 8]",
        "overrides:",
        *[f"  - {o}" for o in suite_overrides(folder, root)],
        "sections:",
        "  - title: Cross and self attention",
        "    variants:",
        "      - name: cross_self",
        "        overrides: [model.self_blocks=1]",
        "      - name: cross_only",
        f"        overrides: [{variant_override}]",
        "  - title: Attention depth",
        "    variants:",
        "      - name: cross_self",
        "        overrides: [model.self_blocks=1]",
    ]
    suite.write_text("\n".join(lines) + "\n")
    return suite


def record_training(monkeypatch) -> list:
    """ablation.train, still training, with every config it is given recorded in the list."""
    configs = []
    real_train = ablation.train
    monkeypatch.setattr(
        ablation, "train", lambda config: configs.append(config) or real_train(config)
    )
    return configs


def test_suite_runs_tabulates_plots_and_resumes(tmp_path, tiny_synthetic_root, monkeypatch):
    suite_file = write_suite(tmp_path, tiny_synthetic_root)
    calls = record_training(monkeypatch)

    assert main(["ablate", "--suite", str(suite_file), "--report", str(tmp_path / "report")]) == 0
    assert len(calls) == 2
    out = tmp_path / "out"
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["variant"] for row in rows] == ["cross_self", "cross_only"]
    for row in rows:
        for key in (
            "train_loss",
            "val_loss",
            "val_acc",
            "test_top1",
            "cnn_params",
            "attention_params",
            "gflops",
            "train_clips_per_s",
            "test_clips_per_s",
            "wall_s",
            "test_top1_at_2_frames",
            "test_top1_at_8_frames",
        ):
            assert row[key] != "", key
    assert float(rows[0]["attention_params"]) > float(rows[1]["attention_params"])
    table = (out / "results.md").read_text()
    assert "## Cross and self attention" in table and "## Test-time clip length" in table
    depth = table[table.index("## Attention depth") :]
    assert "| cross_self |" in depth and "| cross_only |" not in depth.split("## Test")[0]
    assert "| Train loss | Val loss | Val Acc | CNN params | Attention params" in table
    figures = ("cross_and_self_attention.png", "attention_depth.png", "eval_frames.png")
    for name in ("results.md", "results.csv", *figures):
        assert (out / name).is_file() and (tmp_path / "report" / name).is_file(), name

    assert main(["ablate", "--suite", str(suite_file)]) == 0
    assert len(calls) == 2  # everything finished: nothing runs again

    (out / "cross_only" / "seed0" / "result.json").unlink()
    assert main(["ablate", "--suite", str(suite_file)]) == 0
    assert len(calls) == 3 and calls[-1].run.resume == "last"

    # A run killed before its first checkpoint leaves only logs: it starts again.
    (out / "cross_only" / "seed0" / "result.json").unlink()
    shutil.rmtree(out / "cross_only" / "seed0" / "checkpoints")
    assert main(["ablate", "--suite", str(suite_file)]) == 0
    assert len(calls) == 4 and calls[-1].run.resume == ""
    assert (out / "cross_only" / "seed0" / "result.json").is_file()


@pytest.mark.parametrize(
    "override,message",
    [("model.self_blockz=0", "'model.self_blockz'"), ("model.cnn_blocks=11", "must be in 1..8")],
)
def test_bad_variant_fails_before_any_training(tmp_path, override, message, monkeypatch, capsys):
    suite_file = write_suite(tmp_path, tmp_path / "never", variant_override=override)
    monkeypatch.setattr(ablation, "train", lambda config: pytest.fail("trained"))
    assert main(["ablate", "--suite", str(suite_file)]) == 2
    err = capsys.readouterr().err
    assert "cross_only" in err and message in err


SECTIONS = "sections:\n  - title: t\n    variants: [{name: a}]\n"


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "seed: [0]\n" + SECTIONS,
            "unknown key 'seed' in the suite; valid keys: name, notes, base, output_dir, seeds",
        ),
        (
            "sections:\n  - title: t\n    variants: [{name: a, overides: [x=1]}]\n",
            "unknown key 'overides' in a variant; valid keys: name, config, overrides",
        ),
        (
            "sections:\n  - titel: t\n    variants: [{name: a}]\n",
            "unknown key 'titel' in a section; valid keys: title, variants",
        ),
        ("seeds: [zero]\n" + SECTIONS, "key 'seeds\\[0\\]': Value 'zero'.*could not be converted"),
        ("eval_frames: 8\n" + SECTIONS, "key 'eval_frames': Invalid value"),
        ("name: s\n", "needs a 'sections' list of variants"),
        ("seeds: []\n" + SECTIONS, "'seeds' is empty"),
        ("sections: [unclosed\n", "cannot read suite"),
    ],
)
def test_a_wrong_suite_file_is_one_line(tmp_path, text, message):
    suite = tmp_path / "s.yaml"
    suite.write_text(text)
    with pytest.raises(ConfigError, match=message) as error:
        ablation.load_suite(suite)
    assert "\n" not in str(error.value) and str(suite) in str(error.value)


def test_paths_in_a_suite_are_relative_to_its_file(tmp_path):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "base.yaml").write_text("model:\n  cnn_blocks: 5\n")
    (tmp_path / "configs" / "other.yaml").write_text("model:\n  cnn_blocks: 3\n")
    suite_file = tmp_path / "suites" / "s.yaml"
    suite_file.parent.mkdir()
    suite_file.write_text(
        "base: ../configs/base.yaml\nsections:\n  - title: t\n    variants:\n"
        "      - {name: from_base}\n      - {name: own, config: ../configs/other.yaml}\n"
    )
    suite = ablation.load_suite(suite_file)
    assert suite.name == "s" and suite.output_dir == Path("runs/ablations/s")
    blocks = {v.name: suite.resolve(v, 0).model.cnn_blocks for v in suite.variants}
    assert blocks == {"from_base": 5, "own": 3}


def test_a_wrong_suite_is_one_line_from_the_cli(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text("seed: [0]\n" + SECTIONS)
    assert main(["ablate", "--suite", str(suite)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown key 'seed'" in err


def test_a_repeated_name_must_mean_the_same_variant(tmp_path):
    suite = tmp_path / "s.yaml"
    suite.write_text(
        "name: s\nsections:\n"
        "  - title: a\n    variants: [{name: v, overrides: [model.self_blocks=1]}]\n"
        "  - title: b\n    variants: [{name: v, overrides: [model.self_blocks=2]}]\n"
    )
    with pytest.raises(ConfigError, match="used again for another config"):
        ablation.load_suite(suite)


def test_shards_split_the_runs_and_the_last_one_tabulates(tmp_path, tiny_synthetic_root, capsys):
    suite_file = write_suite(tmp_path, tiny_synthetic_root)
    out = tmp_path / "out"
    assert main(["ablate", "--suite", str(suite_file), "--shard", "1/2"]) == 0
    assert "after the other shards finish" in capsys.readouterr().out
    assert (out / "cross_only" / "seed0" / "result.json").is_file()
    assert not (out / "cross_self").exists() and not (out / "results.md").exists()

    assert main(["ablate", "--suite", str(suite_file), "--shard", "0/2"]) == 0
    assert f"results: {out / 'results.md'}" in capsys.readouterr().out
    with open(out / "results.csv", newline="") as handle:
        assert [row["variant"] for row in csv.DictReader(handle)] == ["cross_self", "cross_only"]


@pytest.mark.parametrize("shard", ["2/2", "1", "a/2", "1/0"])
def test_a_bad_shard_is_refused(tmp_path, shard, capsys):
    with pytest.raises(SystemExit) as error:
        main(["ablate", "--suite", str(tmp_path / "s.yaml"), "--shard", shard])
    assert error.value.code == 2 and "is not i/n" in capsys.readouterr().err


def write_pretraining_suite(folder: Path, root: Path) -> Path:
    suite = folder / "suite.yaml"
    lines = [
        "name: tiny pretraining suite",
        f"output_dir: {folder / 'out'}",
        "seeds: [0, 1]",
        "overrides:",
        *[f"  - {o}" for o in suite_overrides(folder, root)],
        "pretraining:",
        "  - {name: masked, stage: pretrain, overrides: [pretrain.recon_clips=0]}",
        "sections:",
        "  - title: Starts",
        "    variants:",
        "      - {name: scratch_50, overrides: [data.label_fraction=0.5], series: scratch}",
        "      - name: masked_50",
        "        overrides: [data.label_fraction=0.5]",
        "        init_from: masked",
        "        series: masked",
        "      - name: masked_100",
        "        init_from: masked",
        "        series: masked",
        "        seeds: [0]",
    ]
    suite.write_text("\n".join(lines) + "\n")
    return suite


def test_a_suite_pretrains_once_and_fine_tunes_from_it(tmp_path, tiny_synthetic_root, monkeypatch):
    suite_file = write_pretraining_suite(tmp_path, tiny_synthetic_root)
    trained = record_training(monkeypatch)
    assert main(["ablate", "--suite", str(suite_file)]) == 0
    out = tmp_path / "out"
    checkpoint = out / "pretraining" / "masked" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    starts = {
        (c.run.output_dir.rsplit("/", 1)[-1], c.trainer.seed): c.model.init_from for c in trained
    }
    assert starts == {
        ("scratch_50", 0): None,
        ("scratch_50", 1): None,
        ("masked_50", 0): str(checkpoint),
        ("masked_50", 1): str(checkpoint),
        ("masked_100", 0): str(checkpoint),
    }
    assert [c.data.label_fraction for c in trained] == [0.5, 0.5, 0.5, 0.5, 1.0]
    table = (out / "results.md").read_text()
    assert "## Label efficiency" in table and "## Pretraining runs" in table
    efficiency = table.split("## Label efficiency")[1].split("## ")[0].splitlines()
    rows = {line.split("|")[1].strip(): line for line in efficiency if line[:2] == "| "}
    assert "| scratch |" in table and rows["masked"].count("±") == 1  # 50%: 2 seeds, 100%: 1
    assert (out / "labels.png").is_file()
    with open(out / "results.csv", newline="") as handle:
        fractions = [row["label_fraction"] for row in csv.DictReader(handle)]
    assert fractions == ["0.5", "0.5", "0.5", "0.5", "1.0"]
    # A rerun reads the finished pretraining run back instead of pretraining again.
    import convperceiver.engine.pretrain as pretrain_module

    def fail(config):
        raise AssertionError("the finished pretraining run was repeated")

    monkeypatch.setattr(pretrain_module, "pretrain", fail)
    (out / "masked_100" / "seed0" / "result.json").unlink()
    assert main(["ablate", "--suite", str(suite_file)]) == 0
    assert len(trained) == 6 and trained[-1].model.init_from == str(checkpoint)


def test_init_from_must_name_a_pretraining_run_or_a_file(tmp_path, tiny_synthetic_root):
    suite_file = write_pretraining_suite(tmp_path, tiny_synthetic_root)
    suite_file.write_text(suite_file.read_text().replace("init_from: masked", "init_from: maskd"))
    with pytest.raises(ConfigError, match="init_from 'maskd' is neither a pretraining run"):
        ablation.load_suite(suite_file)


def test_a_shard_waiting_on_pretraining_gives_up_when_shard_0_is_gone(tmp_path, monkeypatch):
    monkeypatch.setattr(pretraining_runs, "WAIT_SECONDS", 0.01)
    monkeypatch.setattr(pretraining_runs, "GIVE_UP_SECONDS", 0.2)
    spec = pretraining_runs.PretrainingSpec(name="masked")
    # A heartbeat left by an earlier shard 0, long stopped, is no sign of life.
    beat = tmp_path / "pretraining" / pretraining_runs.HEARTBEAT_FILE
    beat.parent.mkdir()
    beat.touch()
    os.utime(beat, (time.time() - 3600, time.time() - 3600))
    started = time.perf_counter()
    with pytest.raises(ConfigError, match="shard 0 has shown no sign of life"):
        pretraining_runs.wait_for([spec], tmp_path)
    assert time.perf_counter() - started >= 0.2


def test_a_shard_waits_while_shard_0_beats_and_reads_its_results(tmp_path, monkeypatch):
    monkeypatch.setattr(pretraining_runs, "WAIT_SECONDS", 0.01)
    monkeypatch.setattr(pretraining_runs, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(pretraining_runs, "GIVE_UP_SECONDS", 0.3)
    spec = pretraining_runs.PretrainingSpec(name="masked")
    result = pretraining_runs.run_folder(tmp_path, spec) / pretraining_runs.RESULT_FILE

    def shard_0() -> None:
        with pretraining_runs.heartbeat(tmp_path):
            time.sleep(1.0)  # longer than GIVE_UP_SECONDS: only the heartbeat keeps it waiting
            result.parent.mkdir(parents=True)
            result.write_text(json.dumps({"name": "masked"}))

    thread = threading.Thread(target=shard_0)
    thread.start()
    try:
        assert pretraining_runs.wait_for([spec], tmp_path) == [{"name": "masked"}]
    finally:
        thread.join()
