"""Start a model from another run's weights: every tensor whose name and shape match.

A file's keys are mapped onto the classifier's names first:
  model.<key>          (a classification checkpoint)  -> <key>
  model.encoder.<key>  (a pretraining checkpoint)      -> <key>; model.decoder.* is dropped
  stem.* / layerN.*    (a torchvision r2plus1d_18)     -> backbone.stem.* / backbone.layerN.*
What does not match stays as `build_model` made it, so a head for another class count is new.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from convperceiver.errors import WeightsError
from convperceiver.models.classifier import R2Plus1DClassifier
from convperceiver.safe_load import load_state_dict_file

log = logging.getLogger(__name__)

HEAD_PREFIXES = ("fc.", "norm.")  # re-learnt per dataset: a match there proves no architecture
TORCHVISION_BODY = re.compile(r"^(stem|layer[1-4])\.")
SHOWN_SKIPS = 5  # skipped names the log line lists


@dataclass
class InitReport:
    """What `load_init_weights` took from a file, and why it left the rest."""

    path: Path
    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # model tensor -> reason

    def summary(self) -> str:
        loaded, skipped = len(self.loaded), len(self.skipped)
        line = f"init_from {self.path}: loaded {loaded} tensors, skipped {skipped}"
        if self.skipped:
            shown = list(self.skipped.items())[:SHOWN_SKIPS]
            more = len(self.skipped) - len(shown)
            line += " (" + "; ".join(f"{name}: {why}" for name, why in shown)
            line += f"; {more} more)" if more else ")"
        return line


def map_keys(state: dict[str, Tensor], *, torchvision_head: bool) -> dict[str, Tensor]:
    """The file's tensors under the classifier's names; the decoder's tensors dropped.

    A torchvision head classifies pooled CNN features: it only fits the baseline's `fc`.
    """
    torchvision = any(TORCHVISION_BODY.match(key) for key in state)
    mapped = {}
    for key, value in state.items():
        if key.startswith("model.decoder.") or (
            torchvision and not torchvision_head and key.startswith("fc.")
        ):
            continue
        name = key.removeprefix("model.encoder.") if key.startswith("model.encoder.") else key
        name = name.removeprefix("model.")
        mapped["backbone." + name if TORCHVISION_BODY.match(name) else name] = value
    return mapped


def _shape(tensor: Tensor) -> str:
    return str(tuple(tensor.shape))


def load_init_weights(model: nn.Module, path: str | Path) -> InitReport:
    """Copy into `model` every tensor of the file at `path` whose name and shape match.

    Runs after `build_model`, so it overrides `model.weights`. Raises `WeightsError` when the
    file is missing or unreadable, or when no weight of the model's CNN or attention (a tensor
    of 2 dims or more outside the head) matches: the file holds another architecture.
    """
    path = Path(path)
    state = load_state_dict_file(path, what="model.init_from file")
    source = map_keys(state, torchvision_head=isinstance(model, R2Plus1DClassifier))
    report = InitReport(path=path)
    chosen = {}
    for name, tensor in model.state_dict().items():
        if name not in source:
            report.skipped[name] = "absent in the file"
        elif source[name].shape != tensor.shape:
            report.skipped[name] = (
                f"shape {_shape(source[name])} in the file vs {_shape(tensor)} in the model"
            )
        else:
            chosen[name] = source[name]
            report.loaded.append(name)
    # Norm statistics and heads can match by chance (resnet18's downsample norms fit
    # R(2+1)D's); a file of this architecture matches a conv, linear or latent weight.
    if not any(chosen[name].ndim > 1 and not name.startswith(HEAD_PREFIXES) for name in chosen):
        raise WeightsError(
            f"model.init_from: {path} holds another architecture: {len(chosen)} of its "
            f"{len(state)} tensors match this model, no weight of its CNN or attention"
        )
    model.load_state_dict(chosen, strict=False)
    log.info("%s", report.summary())
    return report
