"""The shipped configs: the seed's recipe exactly, our recipe beside it, and the suites."""

from pathlib import Path

import pytest

from convperceiver.config import load_config
from convperceiver.experiments.ablation import load_suite

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
SEED_ROWS = sorted(p.stem for p in (CONFIGS / "hmdb51").glob("*.yaml"))
SUITES = sorted(p.name for p in (CONFIGS / "ablations").glob("*.yaml"))

# DESIGN.md section 1b, read from the seed's public code: (config key, value).
SEED_RECIPE = [
    ("optim.optimizer", "adam"),
    ("optim.lr", 1e-3),
    ("optim.weight_decay", 1e-5),
    ("optim.scheduler", "step"),
    ("optim.step_size", 10),
    ("optim.gamma", 0.2),
    ("optim.warmup_epochs", 0.0),
    ("optim.label_smoothing", 0.0),
    ("data.batch_size", 8),
    ("trainer.max_epochs", 100),
    ("trainer.seed", 0),
    ("data.num_frames", 16),
    ("data.clip_duration", 2.0),
    ("data.mean", [0.45, 0.45, 0.45]),
    ("data.std", [0.225, 0.225, 0.225]),
    ("data.resize", [128, 171]),
    ("data.crop_size", 112),
    ("data.horizontal_flip", True),
    ("data.val_protocol", "test"),
    ("data.dataset", "hmdb51"),
    ("data.split", 1),
    ("eval.num_clips", 0),
    ("eval.max_clips", 0),
    ("eval.aggregate", "majority"),
    ("model.weights", "kinetics400"),
]
# The rows whose code the seed published: 1 cross + L >= 1 self, cross-attention never trained.
FROZEN_BY_THE_SEED = {
    "k8_cross1_self6",
    "k8_cross1_self2",
    "k8_cross1_self1",
    "k7_cross1_self1",
    "k6_cross1_self6",
    "k4_cross1_self6",
}


def value(config, key):
    section, name = key.split(".")
    return getattr(getattr(config, section), name)


@pytest.mark.parametrize("row", SEED_ROWS)
def test_seed_configs_resolve_to_the_seed_recipe(row):
    config = load_config(CONFIGS / "hmdb51" / f"{row}.yaml")
    assert [(key, value(config, key)) for key, _ in SEED_RECIPE] == SEED_RECIPE
    assert config.model.freeze_cross_attention == (row in FROZEN_BY_THE_SEED)
    text = (CONFIGS / "hmdb51" / f"{row}.yaml").read_text()
    assert "selects the best epoch on" in text and "official" in text  # the protocol, stated


@pytest.mark.parametrize("row", SEED_ROWS)
def test_recommended_configs_keep_the_architecture_and_change_the_recipe(row):
    seed = load_config(CONFIGS / "hmdb51" / f"{row}.yaml")
    ours = load_config(CONFIGS / "hmdb51" / "recommended" / f"{row}.yaml")
    for key in ("arch", "cnn_blocks", "cross_blocks", "self_blocks", "num_latents", "latent_dim"):
        assert getattr(ours.model, key) == getattr(seed.model, key), key
    assert not ours.model.freeze_cross_attention
    assert ours.optim.optimizer == "adamw" and ours.optim.scheduler == "cosine"
    assert ours.optim.warmup_epochs > 0 and ours.optim.cnn_lr < ours.optim.lr
    assert ours.data.val_protocol == "holdout" and ours.data.mean != seed.data.mean


@pytest.mark.parametrize("name", SUITES)
def test_every_suite_file_resolves_and_says_what_it_shows(name):
    assert load_suite(CONFIGS / "ablations" / name).notes  # load_suite resolves every variant


def test_hmdb51_suite_holds_the_seed_tables_and_the_frozen_question():
    suite = load_suite(CONFIGS / "ablations" / "seed_tables.yaml")
    tables = list(suite.sections.values())
    assert tables[0] == ["k8_cross1_self6", "k8_cross1_self2", "k8_cross1_self1", "baseline"]
    assert tables[1] == [
        "k8_cross1_self1",
        "k7_cross1_self1",
        "k6_cross1_self6",
        "k4_cross1_self6",
        "k4_cross2_self12",
        "baseline",
    ]
    assert tables[2] == ["k8_cross1_self1", "k8_cross1", "k8_self1"]
    assert {v.name for v in suite.variants} >= set(SEED_ROWS)
    for variant in suite.variants:
        if variant.name in tables[3]:
            frozen = suite.resolve(variant, 0).model.freeze_cross_attention
            assert frozen != variant.name.endswith("_trained"), variant.name


def test_synthetic_suite_resolves():
    suite = load_suite(CONFIGS / "ablations" / "seed_tables_synthetic.yaml")
    assert len(suite.seeds) >= 2
    for variant in suite.variants:
        config = suite.resolve(variant, 0)
        assert config.data.dataset == "synthetic" and config.model.weights == "none"
        assert config.model.freeze_cross_attention == variant.name.endswith("_frozen")
    assert "Frozen vs trained cross-attention" in suite.sections


def test_frozen_suite_shares_its_runs_with_the_synthetic_suite():
    tables = load_suite(CONFIGS / "ablations" / "seed_tables_synthetic.yaml")
    frozen = load_suite(CONFIGS / "ablations" / "frozen_vs_trained_synthetic.yaml")
    assert frozen.output_dir == tables.output_dir and len(frozen.seeds) >= 2
    shared = {variant.name: variant for variant in tables.variants}
    for variant in frozen.variants:
        for seed in frozen.seeds:
            assert frozen.resolve(variant, seed) == tables.resolve(shared[variant.name], seed)


def test_cpu_suite_has_the_same_rows_on_a_smaller_budget():
    full = load_suite(CONFIGS / "ablations" / "seed_tables_synthetic.yaml")
    cpu = load_suite(CONFIGS / "ablations" / "seed_tables_synthetic_cpu.yaml")
    assert cpu.sections == full.sections and cpu.output_dir != full.output_dir
    for variant, reference in zip(cpu.variants, full.variants, strict=True):
        small, large = cpu.resolve(variant, 0), full.resolve(reference, 0)
        assert small.model == large.model
        assert small.trainer.max_epochs < large.trainer.max_epochs
        assert small.data.synthetic.videos_per_class < large.data.synthetic.videos_per_class
        assert small.data.root != large.data.root  # a set of other parameters needs its folder
