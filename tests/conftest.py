"""The one tiny config and the fixtures built on it: small models and clips for model tests in
milliseconds, a synthetic set and a training run of seconds for the end-to-end tests.

Test modules import `TINY_MODEL`, `TINY_DATA`, `tiny_overrides` from here rather than spelling a
tiny config of their own; the session's synthetic set and run are shared, so tests only read them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from convperceiver.config import ModelConfig
from convperceiver.models import build_model

# A real architecture with a small attention module; the CNN keeps torchvision's widths.
TINY_MODEL = dict(
    weights="none",
    cnn_blocks=2,
    num_latents=8,
    latent_dim=32,
    cross_head_dim=16,
    self_heads=2,
    self_head_dim=16,
    ff_mult=2,
)
# 4 classes x 6 videos of 16 frames at 32x32; clips of 4 frames.
TINY_DATA = [
    "data.synthetic.classes=4",
    "data.synthetic.videos_per_class=6",
    "data.synthetic.frames=16",
    "data.synthetic.size=32",
    "data.num_frames=4",
    "data.clip_duration=0.5",
    "data.resize=[32,32]",
    "data.crop_size=28",
    "data.batch_size=4",
    "data.num_workers=0",
    "data.val_fraction=0.3",
]


TINY_MODEL_OVERRIDES = [f"model.{key}={value}" for key, value in TINY_MODEL.items()]


def tiny_model_config(**overrides) -> ModelConfig:
    return ModelConfig(**{**TINY_MODEL, **overrides})


def tiny_overrides(root: Path, output: Path, name: str, *extra: str) -> list[str]:
    """The tiny config as `key=value` overrides: data in `root`, run `output/name`, 3 epochs."""
    return [
        f"data.root={root}",
        *TINY_DATA,
        *TINY_MODEL_OVERRIDES,
        "optim.lr=3e-3",
        "trainer.max_epochs=3",
        "eval.num_clips=2",
        f"run.output_dir={output}",
        f"run.name={name}",
        "run.progress_bar=false",
        *extra,
    ]


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_model(tiny_model_config(), num_classes=5)


@pytest.fixture
def tiny_clip():
    torch.manual_seed(1)
    return torch.randn(2, 3, 4, 32, 32)


@pytest.fixture(scope="session")
def tiny_synthetic_root(tmp_path_factory) -> Path:
    """The tiny config's synthetic set, written once per session."""
    from convperceiver.config import load_config
    from convperceiver.data.synthetic import ensure_synthetic

    root = tmp_path_factory.mktemp("synthetic") / "set"
    ensure_synthetic(load_config(None, tiny_overrides(root, root.parent, "unused")).data)
    return root


@pytest.fixture(scope="session")
def tiny_run(tiny_synthetic_root, tmp_path_factory):
    """One epoch on the tiny synthetic set: (best checkpoint, a synthetic video file)."""
    from convperceiver.config import load_config
    from convperceiver.engine.train import train

    output = tmp_path_factory.mktemp("runs")
    config = load_config(
        None, tiny_overrides(tiny_synthetic_root, output, "tiny", "trainer.max_epochs=1")
    )
    return train(config).best_checkpoint, sorted(tiny_synthetic_root.glob("videos/*/*.avi"))[0]


@pytest.fixture(scope="module")
def trained(tiny_run):
    """The tiny run's model, config and class names, loaded afresh for each test module."""
    from convperceiver.engine.train import model_from_checkpoint

    return model_from_checkpoint(tiny_run[0])
