"""Shared fixtures: tiny models and clips, so model tests run in milliseconds."""

from __future__ import annotations

import pytest
import torch

from convperceiver.config import ModelConfig
from convperceiver.models import build_model

TINY_ATTENTION = dict(
    num_latents=8, latent_dim=32, cross_head_dim=16, self_heads=2, self_head_dim=16, ff_mult=2
)


def tiny_model_config(**overrides) -> ModelConfig:
    """A real architecture with a small attention module; the CNN keeps torchvision's widths."""
    return ModelConfig(**{"weights": "none", "cnn_blocks": 2, **TINY_ATTENTION, **overrides})


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return build_model(tiny_model_config(), num_classes=5)


@pytest.fixture
def tiny_clip():
    torch.manual_seed(1)
    return torch.randn(2, 3, 4, 32, 32)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One epoch on the tiny synthetic set: (best checkpoint, a synthetic video file)."""
    from test_train import tiny_overrides

    from convperceiver.config import load_config
    from convperceiver.engine.train import train

    root = tmp_path_factory.mktemp("synthetic") / "set"
    config = load_config(
        None, tiny_overrides(root, root.parent / "runs", "tiny", "trainer.max_epochs=1")
    )
    return train(config).best_checkpoint, sorted(root.glob("videos/*/*.avi"))[0]


@pytest.fixture(scope="module")
def trained(tiny_run):
    """The tiny run's model, config and class names, loaded afresh for each test module."""
    from convperceiver.engine.train import model_from_checkpoint

    return model_from_checkpoint(tiny_run[0])
