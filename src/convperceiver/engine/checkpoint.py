"""Reading a training checkpoint: the classifier's weights, the run's config, the class names.

`VideoClassifierModule.save_hyperparameters` puts `run_config` (the resolved config) and
`class_names` under Lightning's "hyper_parameters" key. Checkpoints written before that kept
both under a "convperceiver" key, with config keys since renamed or given None for "unset";
they are converted on read. Files are read with `weights_only=True`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import Tensor

from convperceiver.config import RENAMED
from convperceiver.errors import CheckpointError
from convperceiver.safe_load import load_tensor_file

LEGACY_KEY = "convperceiver"
# What older configs wrote for "unset", now None: (section, key) -> the old sentinel.
LEGACY_UNSET: dict[tuple[str, str], Any] = {
    ("data", "annotations"): "",
    ("eval", "num_frames"): 0,
    ("eval", "clip_duration"): 0.0,
    ("optim", "cnn_lr"): 0.0,
}


@dataclass
class SavedRun:
    """What a checkpoint holds for rebuilding its model and data."""

    config: dict[str, Any]  # the run's resolved config, in today's keys
    class_names: list[str]
    model_state: dict[str, Tensor]  # the classifier's state_dict, without the "model." prefix


def upgrade_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A config saved before `data.synthetic` and the None defaults, in today's keys."""
    config = copy.deepcopy(saved)
    for old, new in RENAMED.items():
        section, name = old.split(".")
        if name not in config.get(section, {}):
            continue
        value = config[section].pop(name)
        *parents, leaf = new.split(".")
        node = config
        for parent in parents:
            node = node.setdefault(parent, {})
        node[leaf] = value
    for (section, name), unset in LEGACY_UNSET.items():
        values = config.get(section, {})
        if name in values and type(values[name]) is type(unset) and values[name] == unset:
            values[name] = None
    return config


def load_checkpoint(path: str | Path) -> SavedRun:
    """The config, class names and model weights of a convperceiver training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    state = load_tensor_file(path, what="checkpoint", error=CheckpointError)
    if not isinstance(state, dict) or "state_dict" not in state:
        raise CheckpointError(f"{path} is not a convperceiver checkpoint (no state_dict inside)")
    if LEGACY_KEY in state:
        config = upgrade_config(state[LEGACY_KEY]["config"])
        class_names = state[LEGACY_KEY]["class_names"]
    else:
        hparams = state.get("hyper_parameters") or {}
        if hparams.get("run_config") is not None and "class_names" not in hparams:
            raise CheckpointError(
                f"{path} is a pretraining checkpoint, with no classifier head: fine-tune from it"
                f" with `train model.init_from={path}`"
            )
        if hparams.get("run_config") is None:
            raise CheckpointError(f"{path} is not a convperceiver checkpoint (no config inside)")
        config, class_names = hparams["run_config"], hparams["class_names"]
    model_state = {
        key.removeprefix("model."): value
        for key, value in state["state_dict"].items()
        if key.startswith("model.")
    }
    return SavedRun(config=config, class_names=list(class_names), model_state=model_state)
