import json
import re

import pytest
from conftest import TINY_DATA

from convperceiver.arguments import split_videos_and_overrides
from convperceiver.cli import build_parser, main, parse
from convperceiver.errors import ConfigError


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
        (["summary", "model.nope=1"], "'model.nope'.*valid keys: arch, cnn_blocks"),
        (["train", "model.cnn_blocks=abc"], "'model.cnn_blocks'.*could not be converted"),
        (["summary", "model.cnn_blocks=12"], "model.cnn_blocks=12 must be in 1..8"),
        (["summary", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["benchmark", "--config", "missing.yaml"], "config file not found: missing.yaml"),
        (["summary", "model.weights=/no/such/file.pth"], "weights file not found"),
        (["ablate", "--suite", "missing.yaml"], "suite file not found: missing.yaml"),
        (["evaluate", "--checkpoint", "missing.ckpt"], "checkpoint not found: missing.ckpt"),
        (
            ["data", "synth", "data.synth_classes=4"],
            "'data.synth_classes' is now 'data.synthetic.classes'",
        ),
        (["data", "synth", "data.dataset=hmdb51"], "data synth writes the synthetic set only"),
        (
            ["data", "check", "data.dataset=videos", "data.root=missing"],
            "folder not found: missing",
        ),
    ],
)
def test_user_errors_are_one_line_and_exit_code_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1
    command = " ".join(word for word in argv if word.isalpha() and word.islower())
    assert err.startswith(f"convperceiver {command}: error: ")
    assert re.search(message, err), err


def test_predict_and_benchmark_share_the_amp_default():
    parser = build_parser()
    predict = parser.parse_args(["predict", "--checkpoint", "c.ckpt", "v.mp4"])
    assert predict.amp == parser.parse_args(["benchmark"]).amp == "auto"


def test_an_argument_with_equals_is_an_override_unless_it_is_a_file(tmp_path):
    video = tmp_path / "take=2.avi"
    video.write_bytes(b"")
    videos, overrides = split_videos_and_overrides(
        ["a.mp4", "eval.num_clips=3", str(video), "eval.aggregate=majority"], command="predict"
    )
    assert videos == ["a.mp4", str(video)]
    assert overrides == ["eval.num_clips=3", "eval.aggregate=majority"]
    with pytest.raises(ConfigError, match=r"^explain: no VIDEO"):
        split_videos_and_overrides(["eval.num_clips=3"], command="explain")


def test_overrides_may_follow_options():
    evaluate = parse(["evaluate", "--checkpoint", "c.ckpt", "a=1", "--json", "b=2"])
    assert evaluate.overrides == ["a=1", "b=2"] and evaluate.json
    predict = parse(["predict", "--checkpoint", "c.ckpt", "v.mp4", "--topk", "3", "a=1"])
    assert predict.inputs == ["v.mp4", "a=1"] and predict.topk == 3
    explain = parse(["explain", "--checkpoint", "c.ckpt", "v.mp4", "--latents", "2", "a=1"])
    assert explain.inputs == ["v.mp4", "a=1"] and explain.latents == 2


@pytest.mark.parametrize("extra", ["--bogus", "stray"])
def test_what_is_neither_an_option_nor_an_override_is_refused(extra, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(["evaluate", "--checkpoint", "c.ckpt", "a=1", "--json", extra])
    assert exit_info.value.code == 2
    assert f"unrecognized arguments: {extra}" in capsys.readouterr().err


def test_explain_takes_one_video(tiny_run, capsys):
    checkpoint, video = tiny_run
    assert main(["explain", "--checkpoint", str(checkpoint), str(video), str(video)]) == 2
    assert "explain: one VIDEO at a time, got 2" in capsys.readouterr().err


def test_predict_applies_override_positionals(tiny_run, capsys):
    checkpoint, video = tiny_run
    argv = ["predict", "--checkpoint", str(checkpoint), "--json", "--amp", "off", str(video)]
    code, out, _ = run(capsys, *argv)
    assert code == 0 and json.loads(out)[0]["num_clips"] == 2  # the tiny config's eval.num_clips
    code, out, _ = run(capsys, *argv, "eval.num_clips=3")
    assert code == 0 and json.loads(out)[0]["num_clips"] == 3


def test_predict_with_a_wrong_override_is_one_line(tiny_run, capsys):
    checkpoint, video = tiny_run
    code, out, err = run(
        capsys, "predict", "--checkpoint", str(checkpoint), str(video), "eval.num_clipz=3"
    )
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "'eval.num_clipz'" in err and "valid keys: num_frames" in err


def test_data_synth_then_check_read_the_same_config(tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  synthetic:\n    classes: 4\n    size: 32\n")
    root = tmp_path / "set"
    small = ["data.synthetic.videos_per_class=3", "data.synthetic.frames=16"]
    synth = ["data", "synth", "--config", str(config), "--out", str(root), "--workers", "1"]
    code, out, _ = run(capsys, *synth, *small)
    assert code == 0 and out == f"synthetic set: {root}\n"
    assert len(list(root.glob("videos/*/"))) == 4

    check = ["data", "check", "--json", f"data.root={root}", "data.clip_duration=0.5"]
    code, out, _ = run(capsys, *check)
    report = json.loads(out)
    assert code == 0 and report["problems"] == []
    broken = sorted((root / "videos").glob("*/*.avi"))[0]
    broken.write_bytes(b"")
    code, out, _ = run(capsys, *check)
    problems = json.loads(out)["problems"]
    assert code == 1 and [p["path"] for p in problems] == [str(broken)]


def test_data_synth_writes_where_data_root_says(tmp_path, capsys):
    root = tmp_path / "by-override"
    tiny = [o for o in TINY_DATA if o.startswith("data.synthetic.")]
    overrides = [f"data.root={root}", *tiny, "data.synthetic.videos_per_class=3"]
    code, out, _ = run(capsys, "data", "synth", "--workers", "1", *overrides)
    assert code == 0 and out == f"synthetic set: {root}\n"
    assert (root / "meta.json").is_file()


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
