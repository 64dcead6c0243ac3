from pathlib import Path

import pytest

from convperceiver.config import load_config
from convperceiver.profiling.summary import format_summary, summarize

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "hmdb51"

# DESIGN.md section 1: the seed's CNN column, and its attention code's own counts (millions).
SEED_TABLE = {
    "k8_cross1_self6": (31.30, 28.66, 98),
    "k8_cross1_self2": (31.30, 11.85, 98),
    "k8_cross1_self1": (31.30, 7.65, 98),
    "k7_cross1_self1": (17.14, 7.65, 98),
    "k6_cross1_self6": (7.80, 28.62, 784),
    "k4_cross1_self6": (1.93, 28.61, 6272),
    "k4_cross2_self12": (1.93, 57.19, 6272),
    "k8_cross1": (31.30, 3.45, 98),
    "k8_self1": (31.30, 4.23, 98),
}


@pytest.mark.parametrize("name", SEED_TABLE)
def test_summary_reproduces_the_seed_parameter_table(name):
    cnn, attention, tokens = SEED_TABLE[name]
    summary = summarize(load_config(CONFIGS / f"{name}.yaml"), num_classes=51)
    assert summary["cnn_params"] / 1e6 == pytest.approx(cnn, rel=0.01)
    assert summary["attention_params"] / 1e6 == pytest.approx(attention, rel=0.01)
    assert summary["tokens"] == tokens
    assert summary["total_params"] == summary["cnn_params"] + summary["attention_params"]
    assert summary["gflops"] > summary["cnn_gflops"] > 0


def test_baseline_is_the_full_cnn_plus_a_linear_head():
    summary = summarize(load_config(CONFIGS / "baseline.yaml"), num_classes=51)
    assert summary["cnn_params"] / 1e6 == pytest.approx(31.30, rel=0.01)
    assert summary["attention_params"] == 512 * 51 + 51
    # torchvision lists R(2+1)D-18 at 40.52 GFLOPS counted as multiply-adds.
    assert summary["gmacs"] == pytest.approx(40.52, rel=0.01)


def test_there_is_one_config_per_seed_row():
    assert {p.stem for p in CONFIGS.glob("*.yaml")} == {*SEED_TABLE, "baseline"}


def test_self_attention_flops_grow_with_the_square_of_the_tokens():
    config = load_config(
        overrides=[
            "model.cnn_blocks=4",
            "model.cross_blocks=0",
            "data.num_frames=8",
            "data.crop_size=32",
        ]
    )
    short = summarize(config, num_classes=5)
    config.data.num_frames = 16
    long = summarize(config, num_classes=5)
    assert long["tokens"] == 2 * short["tokens"]
    attention_ratio = long["attention_gflops"] / short["attention_gflops"]
    assert 2.0 < attention_ratio < 4.0  # linear projections double, QK^T and AV quadruple
    assert long["cnn_gflops"] == pytest.approx(2 * short["cnn_gflops"], rel=0.01)


def test_frozen_and_trainable_parameters_are_reported_apart():
    config = load_config(CONFIGS / "k8_cross1_self1.yaml")
    summary = summarize(config, num_classes=51)
    assert summary["frozen_params"] == 256 * 512 + 3_290_062  # latents + the cross block
    assert summary["trainable_params"] + summary["frozen_params"] == summary["total_params"]
    assert "trainable / frozen" in format_summary(summary)
