"""`convperceiver benchmark`: every documented key, and figures that agree with each other.

Timings depend on whoever else uses the machine, so no test asserts on a speed; the checks
are on keys, signs and the arithmetic that ties the figures together.
"""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch
from conftest import TINY_DATA, TINY_MODEL_OVERRIDES

from convperceiver.cli import main
from convperceiver.config import load_config
from convperceiver.data.datamodule import dataset_num_classes
from convperceiver.engine.checkpoint import load_checkpoint
from convperceiver.models import build_model
from convperceiver.profiling.benchmark import format_benchmark
from convperceiver.profiling.measure import PeakMemory, cpu_peak_supported
from convperceiver.profiling.summary import summarize

TINY = [*TINY_DATA, *TINY_MODEL_OVERRIDES]
# One thread: on a shared machine a second OpenMP thread waits for a busy core at every op.
FAST = ["--batch-size", "2", "--repeats", "1", "--warmup", "1", "--threads", "1"]
MODEL_KEYS = (
    "gflops",
    "params",
    "train_clips_per_s",
    "infer_clips_per_s",
    "latency_ms",
    "peak_memory_mb",
    "achieved_gflops_train",
    "achieved_gflops_infer",
)


@pytest.fixture(scope="module")
def result() -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["benchmark", "--json", "--device", "cpu", *TINY, *FAST])
    assert code == 0
    return json.loads(out.getvalue())


def test_json_has_every_documented_key(result):
    for key in ("device", "settings", "matmul_gflops", "ratios", "speedup_vs_stock"):
        assert result[key], key
    assert "bf16_top1_agreement" in result
    for name in ("model", "baseline"):
        for key in MODEL_KEYS:
            value = result[name][key]
            if key == "peak_memory_mb" and not cpu_peak_supported():
                continue
            assert value > 0, (name, key)
    assert result["device"] == "cpu"
    assert result["settings"]["batch_size"] == 2
    assert result["settings"]["threads"] == 1
    assert result["settings"]["stock"]["dtype"] == "float32"
    assert result["settings"]["ours_train"]["memory_format"] == "channels_last_3d"


@pytest.mark.parametrize("name, arch", [("model", "hybrid"), ("baseline", "baseline")])
def test_gflops_and_params_are_the_summary_ones(result, name, arch):
    config = load_config(None, [*TINY, f"model.arch={arch}"])
    summary = summarize(config, num_classes=dataset_num_classes(config.data))
    assert result[name]["gflops"] == summary["gflops"]
    assert result[name]["params"] == summary["total_params"]
    # One training step counts the forward and the backward: about three forwards.
    assert 2 < result[name]["train_gflops"] / result[name]["gflops"] < 3.5


def test_bf16_agreement_counts_every_clip_where_bf16_ran(result):
    agreement = result["bf16_top1_agreement"]
    if result["settings"]["ours_infer"]["dtype"] == "float32":
        assert agreement is None
        return
    assert agreement["clips"] == 2 * (1 + 1)


def test_text_report_names_the_settings(result):
    text = format_benchmark(result)
    assert "channels_last_3d" in text
    assert "model/baseline" in text
    assert "GFLOP/s" in text


def test_bad_warmup_is_one_line_and_exit_code_2(capsys):
    code = main(["benchmark", "--warmup", "0", *TINY])
    _, err = capsys.readouterr()
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "warmup 0" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_is_one_line(capsys):
    code = main(["benchmark", "--device", "cuda", *TINY])
    _, err = capsys.readouterr()
    assert code == 2
    assert "no CUDA device" in err


@pytest.mark.skipif(not cpu_peak_supported(), reason="needs Linux /proc")
def test_peak_memory_counts_what_is_allocated_inside():
    with PeakMemory(torch.device("cpu")) as peak:
        block = torch.ones(16 * 2**20)  # 64 MB, touched
        del block
    assert 60 < peak.megabytes < 200


def test_held_out_agreement_scores_every_test_clip_of_a_checkpoint(tiny_run, tmp_path):
    from convperceiver.engine.train import checkpoint_with_data, evaluate
    from convperceiver.profiling.agreement import held_out_agreement
    from convperceiver.profiling.execution import Settings

    checkpoint, _ = tiny_run
    evaluated = evaluate(checkpoint, ["run.progress_bar=false"], out=tmp_path).metrics
    cpu = torch.device("cpu")
    model, _, _, data = checkpoint_with_data(checkpoint)
    same_numerics = held_out_agreement(model, data, settings=Settings(), device=cpu)
    assert same_numerics["clips"] == evaluated["num_clips"]
    assert same_numerics["top1_agreement"] == 1.0
    assert same_numerics["stock_clip_top1"] == pytest.approx(evaluated["clip_top1"])

    bf16 = Settings(amp=torch.bfloat16, channels_last=True)
    first = held_out_agreement(model, data, settings=bf16, device=cpu, max_clips=3)
    assert first["clips"] == 3
    assert first["settings"]["dtype"] == "bfloat16 autocast"


def test_benchmark_of_a_checkpoint_uses_its_config_and_reports_agreement(tiny_run, capsys):
    checkpoint, _ = tiny_run
    code = main(["benchmark", "--json", "--device", "cpu", "--checkpoint", str(checkpoint), *FAST])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    data = load_checkpoint(checkpoint).config["data"]
    size = data["crop_size"]
    assert result["settings"]["clip"] == [3, data["num_frames"], size, size]
    assert result["held_out_agreement"]["checkpoint"] == str(checkpoint)
    assert "held-out top-1 agreement" in format_benchmark(result)


def test_stock_runs_channels_first_even_on_channels_last_clips():
    """A convolution follows its input's format: stock must not inherit a channels-last clip."""
    from convperceiver.profiling.execution import STOCK, Settings, synthetic_batches

    config = load_config(overrides=TINY)
    (batch,) = synthetic_batches(config, batch_size=2, count=1)
    assert batch.is_contiguous()
    fmt = torch.channels_last_3d
    permuted = batch.contiguous(memory_format=fmt)
    template = build_model(config.model, num_classes=3)
    for settings, expect_last in ((STOCK, False), (Settings(channels_last=True), True)):
        model = settings.prepare(template, torch.device("cpu"), train=False)
        clip = settings.input(permuted)
        assert clip.is_contiguous(memory_format=fmt) == expect_last
        assert model.backbone(clip).is_contiguous(memory_format=fmt) == expect_last


def test_runs_take_turns_within_every_repeat():
    from convperceiver.profiling.workloads import alternate

    calls = []
    runs = {name: (lambda index, name=name: calls.append((name, index))) for name in ("a", "b")}
    medians = alternate(runs, device=torch.device("cpu"), warmup=2, repeats=2, done=1)
    assert calls == [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("a", 3), ("b", 3)]
    assert set(medians) == {"a", "b"}
