"""The scripts in benchmarks/ run end to end on tiny settings and print consistent JSON.

Their figures are timings, so only keys, signs and the ratios' arithmetic are checked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def run_json(main, argv: list[str], capsys) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cache_benchmark_times_both_sides(capsys):
    from bench_cache import main

    result = run_json(main, ["--copies", "1"], capsys)
    assert result["videos"] >= 4
    assert result["epoch_s_original"] > 0 and result["epoch_s_cached"] > 0
    # The epoch times are printed to the millisecond, so their quotient is only that precise.
    assert result["speedup"] == pytest.approx(
        result["epoch_s_original"] / result["epoch_s_cached"], rel=0.1
    )


def test_loader_benchmark_gives_a_rate_per_worker_count(capsys):
    from bench_loader import main

    argv = ["--workers", "0", "1", "--copies", "1", "--epochs", "1"]
    result = run_json(main, argv, capsys)
    ratios = result["ratio_to_0_worker_original"]
    for source in ("original", "cache"):
        assert set(result["clips_per_s"][source]) == {"0", "1"}
        assert all(rate > 0 for rate in result["clips_per_s"][source].values())
    assert ratios["original"]["0"] == 1.0
    assert ratios["cache"]["1"] == pytest.approx(
        result["clips_per_s"]["cache"]["1"] / result["clips_per_s"]["original"]["0"], rel=0.05
    )


def test_attention_scaling_times_the_cnn_and_the_attention_apart(capsys):
    from bench_attention_scaling import main

    argv = ["--blocks", "8", "--frames", "8", "--variants", "cross", "--no-check", "--bf16"]
    assert main([*argv, "--repeats", "1", "--batch-size", "2", "--json"]) == 0
    out = capsys.readouterr().out  # the text report, then the JSON object
    result = json.loads(out[out.index("\n{") :])
    (row,) = result["rows"]
    assert (row["blocks"], row["frames"], row["batch"], row["tokens"]) == (8, 8, 2, 1 * 7 * 7)
    assert row["cnn_ms"] > 0 and row["attention_ms"] > 0
    assert row["attention_share_of_cnn"] == pytest.approx(row["attention_ms"] / row["cnn_ms"])
    assert result["check"] is None


def test_predict_benchmark_compares_fp32_and_bf16_on_the_same_clips(tiny_run, capsys):
    from bench_predict import main

    checkpoint, video = tiny_run
    result = run_json(main, ["--checkpoint", str(checkpoint), str(video), "--repeats", "1"], capsys)
    assert result["videos"] == 1 and result["clips"] >= 1
    assert result["model_s_fp32"] > 0 and result["model_s_bf16"] > 0
    assert result["speedup"] == pytest.approx(result["model_s_fp32"] / result["model_s_bf16"])
    assert 0 < result["max_probability_difference"] < 0.05
    assert result["top1_agreement"] in (0.0, 1.0)
