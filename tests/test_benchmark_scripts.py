"""The scripts in benchmarks/ run end to end on tiny settings and print consistent JSON.

Their figures are timings, so only keys, signs and the ratios' arithmetic are checked.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

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


def test_loader_benchmark_gives_a_rate_per_worker_count(tmp_path, capsys):
    from bench_loader import main
    from bench_sets import SETS, ensure_set

    training = tmp_path / "benchmark.json"
    training.write_text(json.dumps({"model": {"train_clips_per_s": 300.0}, "baseline": None}))
    argv = ["--sets", str(tmp_path), "--count", "hmdb51-like=10", "kinetics-like=0"]
    argv += ["--workers", "1", "--seconds", "0.2", "--repeats", "1", "--no-decord"]
    threads = torch.get_num_threads()
    result = run_json(main, [*argv, "--from-benchmark", str(training)], capsys)
    assert torch.get_num_threads() == threads  # the caller's process is left as it was
    (entry,) = result["sets"].values()
    assert entry["videos"] == 10 and entry["generate_s"] > 0
    assert set(entry["clips_per_s"]) == {"ours original", "ours cache", "cache, torch hand-off"}
    for source, rates in entry["clips_per_s"].items():
        assert set(rates) == {"0", "1"}  # in-process is always measured: it is the baseline
        assert all(rate > 0 for rate in rates.values())
        assert all(cpu > 0 for cpu in entry["cpu_ms_per_clip"][source].values())
        assert set(entry["workers_needed"][source]) == {"model"}
    assert entry["ratio_to_baseline"]["ours original"]["0"] == 1.0
    assert set(entry["scaling"]["ours cache"]) == {"1 worker / in-process"}
    assert result["train_rates"] == {"model": 300.0} and result["decord"] is None
    # The set is kept on disk: asking again writes nothing.
    assert ensure_set(SETS["hmdb51-like"], tmp_path, count=10)[1] == 0.0


def test_workers_needed_extrapolates_with_the_observed_scaling():
    from bench_loader import workers_needed

    rates = {0: 50.0, 1: 40.0, 2: 60.0}  # 2 workers at 75% of twice one worker
    assert workers_needed(rates, 55.0) == {"workers": 2, "measured": True, "by_cpu": None}
    needed = workers_needed(rates, 100.0, cpu_ms=25.0)  # 40 clips/s of CPU per core
    assert needed == {"workers": 4, "measured": False, "efficiency": 0.75, "by_cpu": 3}
    assert workers_needed({0: 50.0, 1: 40.0}, 100.0)["workers"] == 3


def test_scaling_compares_one_worker_with_in_process_and_more_with_one():
    from bench_loader import scaling

    assert scaling({0: 50.0, 1: 45.0, 2: 81.0}) == {
        "1 worker / in-process": 0.9,
        "2 workers / 1": 1.8,
    }
    assert scaling({0: 50.0}) == {}


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
