import json

import pytest

from convperceiver.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_summary_json_has_the_documented_keys(capsys):
    code, out, _ = run(
        capsys,
        "summary",
        "--json",
        "model.cnn_blocks=4",
        "model.weights=none",
        "data.num_frames=4",
        "data.crop_size=32",
    )
    assert code == 0
    summary = json.loads(out)
    for key in (
        "cnn_params",
        "attention_params",
        "total_params",
        "tokens",
        "gflops",
        "trainable_params",
        "frozen_params",
    ):
        assert key in summary
    assert summary["tokens"] == 2 * 8 * 8


def test_summary_text(capsys):
    code, out, _ = run(
        capsys, "summary", "model.cross_blocks=0", "data.num_frames=4", "data.crop_size=32"
    )
    assert code == 0
    assert "8 CNN blocks + 1 Self" in out and "tokens M" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["summary", "model.cnn_blocks=12"], "model.cnn_blocks=12 must be in 1..8"),
        (["summary", "model.nope=1"], "'model.nope'"),
        (["summary", "--config", "missing.yaml"], "config file not found"),
        (["summary", "model.weights=/no/such/file.pth"], "weights file not found"),
    ],
)
def test_user_errors_are_one_line_and_exit_code_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert "Traceback" not in err


def test_data_synth_then_check_on_the_synthetic_set(tmp_path, capsys):
    root = tmp_path / "set"
    code, out, _ = run(
        capsys,
        "data",
        "synth",
        "--out",
        str(root),
        "--classes",
        "4",
        "--videos-per-class",
        "3",
        "--frames",
        "16",
        "--size",
        "32",
        "--workers",
        "1",
    )
    assert code == 0 and str(root) in out
    check = ["data", "check", "--dataset", "synthetic", "--root", str(root), "--json"]
    code, out, _ = run(capsys, *check, "--clip-duration", "0.5")
    report = json.loads(out)
    assert code == 0 and report["problems"] == []
    broken = sorted((root / "videos").glob("*/*.avi"))[0]
    broken.write_bytes(b"")
    code, out, _ = run(capsys, *check, "--clip-duration", "0.5")
    problems = json.loads(out)["problems"]
    assert code == 1 and [p["path"] for p in problems] == [str(broken)]


def test_missing_dataset_is_one_line_naming_the_path(tmp_path, capsys):
    code, _, err = run(
        capsys,
        "train",
        "data.dataset=hmdb51",
        f"data.root={tmp_path / 'hmdb'}",
        "model.weights=none",
    )
    assert code == 2 and err.count("\n") == 1
    assert str(tmp_path) in err and "hmdb51_org.rar" in err
