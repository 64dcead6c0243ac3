"""The typed config: dataclass defaults, then a YAML file, then `key=value` overrides.

OmegaConf merges and type-checks the layers; `validate` then checks the values whose valid
set a type cannot express (choices and ranges), so every mistake is one readable line.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from convperceiver.errors import ConfigError

KINETICS_MEAN = [0.43216, 0.394666, 0.37645]
KINETICS_STD = [0.22803, 0.22145, 0.216989]


@dataclass
class ModelConfig:
    arch: str = (
        "hybrid"  # hybrid: truncated CNN + attention | baseline: full R(2+1)D-18 + linear head
    )
    cnn_blocks: int = 8  # k: the stem plus the first k BasicBlocks of layer1..layer4 (1..8)
    weights: str = "kinetics400"  # kinetics400 | none | path to a state_dict file
    cross_blocks: int = 1  # G groups of [1 cross + L self]; 0 = self-attention on the CNN tokens
    self_blocks: int = 1  # L: self-attention layers per group (in total when cross_blocks = 0)
    num_latents: int = 256  # N learned latent queries
    latent_dim: int = 512  # D
    cross_heads: int = 1
    cross_head_dim: int = 64
    self_heads: int = 8
    self_head_dim: int = 64
    ff_mult: int = 4  # GEGLU hidden width = ff_mult * D
    fourier_bands: int = 6  # position features per axis: 2 * bands + 1
    max_freq: float = 10.0
    dropout: float = 0.0  # on attention weights and feed-forward outputs
    freeze_cnn_blocks: int = 0  # freeze the stem and the first n blocks; -1 = the whole CNN
    freeze_cross_attention: bool = False  # keep latents and cross blocks at their initialisation
    init_from: str | None = None  # a checkpoint of ours or a torchvision state_dict to start from


@dataclass
class SyntheticConfig:
    classes: int = 10  # an even number, 2..14: classes come in time-reversed pairs
    videos_per_class: int = 40
    frames: int = 48  # frames per video
    size: int = 64  # frame height and width, pixels
    seed: int = 0
    background: str = "plain"  # plain | textured: far harder to learn from scratch


# The smallest synthetic set worth writing, and why; `generate_synthetic` holds to it too.
SYNTHETIC_MINIMUMS: dict[str, tuple[int, str]] = {
    "videos_per_class": (3, "two source films: every split gets a training and a test film"),
    "frames": (2, "a video and its time-reversed twin differ only from 2 frames"),
    "size": (
        16,
        "at 16 the rotations' direction marker, the smallest labelled shape, is 2 px wide",
    ),
    "seed": (0, "random generators take no negative seed"),
}


@dataclass
class DataConfig:
    dataset: str = "synthetic"  # synthetic | hmdb51 | ucf101 | folder | list | videos (unlabelled)
    root: str = "data/synthetic"  # videos; HMDB51: <root>/<class>/<video>.avi
    annotations: str | None = None  # split files (hmdb51, ucf101) or list files; None = by root
    classes: list[str] | None = None  # train on these classes only (by name); None = all
    label_fraction: float = 1.0  # per class, this fraction of the training videos, chosen by seed
    split: int = 1  # official split 1..3 (hmdb51, ucf101)
    num_frames: int = 16  # frames per training clip
    clip_duration: float = 2.0  # seconds spanned by one clip
    resize: list[int] = field(default_factory=lambda: [128, 171])  # (height, width) before crop
    crop_size: int = 112
    mean: list[float] = field(default_factory=lambda: list(KINETICS_MEAN))
    std: list[float] = field(default_factory=lambda: list(KINETICS_STD))
    horizontal_flip: bool = False  # never for direction-labelled classes (the synthetic set)
    val_protocol: str = "holdout"  # holdout: grouped by source from train | test: the test split
    val_fraction: float = 0.15
    batch_size: int = 8
    num_workers: int = 2
    cache: str = ""  # folder of a pre-decoded cache written by `convperceiver data cache`
    decoder: str = "pyav"  # pyav | torchcodec-cuda (NVDEC; falls back to pyav without CUDA)
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # generated into root


@dataclass
class EvalConfig:
    num_frames: int | None = None  # frames per evaluation clip; None = data.num_frames
    clip_duration: float | None = None  # seconds per evaluation clip; None = data.clip_duration
    num_clips: int = 0  # uniform clips per video; 0 = as many non-overlapping clips as fit
    max_clips: int = 10  # cap on clips per video when num_clips = 0
    aggregate: str = "mean"  # mean of softmax | majority vote of clip argmax (the seed's)
    three_crop: bool = False  # left/centre/right crops per clip


@dataclass
class OptimConfig:
    optimizer: str = "adamw"  # adamw | adam | sgd
    lr: float = 1e-3  # the attention module and head
    cnn_lr: float | None = None  # the pretrained CNN; None = same as lr
    weight_decay: float = 0.05
    momentum: float = 0.9  # sgd only
    scheduler: str = "cosine"  # cosine | step | none
    warmup_epochs: float = 0.0  # linear warm-up from lr / 100
    step_size: int = 10  # step scheduler: epochs between decays
    gamma: float = 0.1  # step scheduler: decay factor
    label_smoothing: float = 0.0
    layer_decay: float = 1.0  # lr x decay^(depth from the head) per block, as BEiT; 1 = off
    decay_everything: bool = False  # weight decay on biases, norms, latents, CLS too (the seed's)


@dataclass
class TrainerConfig:
    max_epochs: int = 30
    accelerator: str = "auto"  # auto | cpu | gpu
    devices: str = "auto"  # auto | a count | a list such as "0,1"
    num_nodes: int = 1
    strategy: str = "auto"  # auto | ddp | ddp_spawn | ...
    precision: str = "32"  # 32 | bf16-mixed | 16-mixed | auto: bf16-mixed where bf16 is native
    channels_last: bool = True  # the CNN in channels_last_3d: faster convolutions, same values
    accumulate_grad_batches: int = 1
    gradient_clip_val: float = 0.0  # 0 = off
    early_stopping_patience: int = 0  # epochs without val improvement; 0 = off
    seed: int = 0
    deterministic: bool = False
    log_every_n_steps: int = 10
    val_every_n_epochs: int = 1  # validate (and pick the best checkpoint) every n epochs


@dataclass
class RunConfig:
    output_dir: str = "runs"
    name: str = ""  # run folder under output_dir; "" = the config's name and a timestamp
    resume: str = ""  # "" | last | path to a checkpoint
    progress_bar: bool = True


@dataclass
class PretrainConfig:
    mask_ratio: float = 0.75  # share of the CNN's spatial token cells masked, as tubes in time
    mask_block: int = 1  # mask blocks of n x n token cells (at k=1 a cell is 2x2 pixels)
    decoder_dim: int = 128  # width of the Perceiver-IO decoder's queries
    decoder_depth: int = 0  # self-attention layers over the masked queries (quadratic in them)
    decoder_heads: int = 4
    target: str = "pixels"  # pixels | pixels+teacher (adds a frozen teacher CNN's features)
    teacher_weight: float = 1.0  # the teacher loss's weight beside the pixel loss
    normalize_target: bool = True  # each tube's pixels to zero mean, unit variance (VideoMAE)
    recon_clips: int = 4  # clips drawn in reconstructions.png after each epoch; 0 = none


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    run: RunConfig = field(default_factory=RunConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)


# Keys that moved, so an old config fails with a line that names the new key.
RENAMED = {
    "data.synth_classes": "data.synthetic.classes",
    "data.synth_videos_per_class": "data.synthetic.videos_per_class",
    "data.synth_frames": "data.synthetic.frames",
    "data.synth_size": "data.synthetic.size",
    "data.synth_seed": "data.synthetic.seed",
    "data.synth_background": "data.synthetic.background",
}

CHOICES: dict[str, tuple[str, ...]] = {
    "model.arch": ("hybrid", "baseline"),
    "data.dataset": ("synthetic", "hmdb51", "ucf101", "folder", "list", "videos"),
    "data.val_protocol": ("holdout", "test"),
    "data.decoder": ("pyav", "torchcodec-cuda"),
    "data.synthetic.background": ("plain", "textured"),
    "eval.aggregate": ("mean", "majority"),
    "optim.optimizer": ("adamw", "adam", "sgd"),
    "optim.scheduler": ("cosine", "step", "none"),
    "trainer.precision": ("32", "bf16-mixed", "16-mixed", "auto"),
    "pretrain.target": ("pixels", "pixels+teacher"),
}


def _section_keys(error: ConfigKeyError) -> str:
    """The valid keys of the section an unknown key was looked up in."""
    parent = (error.full_key or "").rpartition(".")[0]
    node: Any = Config
    for part in filter(None, parent.split(".")):
        node = {f.name: f.type for f in dataclasses.fields(node)}.get(part)
        node = globals().get(node) if isinstance(node, str) else node
        if node is None:
            return ""
    if not dataclasses.is_dataclass(node):
        return ""
    return "; valid keys: " + ", ".join(f.name for f in dataclasses.fields(node))


def _flat_keys(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [k for key, value in node.items() for k in _flat_keys(value, f"{prefix}{key}.")]


def _reject_renamed(keys: Sequence[str], where: str) -> None:
    for key in keys:
        key = key.rstrip(".")
        if key in RENAMED:
            raise ConfigError(f"{where}: config key {key!r} is now {RENAMED[key]!r}")


def load_config(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    *,
    base: dict[str, Any] | None = None,
) -> Config:
    """Merge the defaults, `base` (a saved config), a YAML file and `key=value` overrides."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"config file not found: {path}")
    for override in overrides:
        if "=" not in override:
            raise ConfigError(f"override {override!r} is not of the form key=value")
    _reject_renamed([o.split("=", 1)[0].lstrip("+~") for o in overrides], "override")
    try:
        layers = [OmegaConf.create(base)] if base is not None else []
        if path is not None:
            layer = OmegaConf.load(path)
            _reject_renamed(_flat_keys(OmegaConf.to_container(layer)), str(path))
            layers.append(layer)
        merged = OmegaConf.merge(
            OmegaConf.structured(Config), *layers, OmegaConf.from_dotlist(list(overrides))
        )
        config = OmegaConf.to_object(merged)
    except ConfigKeyError as error:
        first_line = str(error).splitlines()[0]
        raise ConfigError(
            f"config key {error.full_key!r}: {first_line}{_section_keys(error)}"
        ) from error
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", None)
        raise ConfigError(f"config key {key!r}: {str(error).splitlines()[0]}") from error
    except ConfigError:
        raise
    except Exception as error:  # a YAML syntax error names the file and line
        raise ConfigError(f"cannot read config {path}: {str(error).splitlines()[0]}") from error
    assert isinstance(config, Config)
    validate(config)
    return config


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def validate(config: Config) -> None:
    """Check choices and ranges that the dataclass types cannot express."""
    from convperceiver.models.backbone import MAX_BLOCKS  # torch only once a config is checked

    for key, choices in CHOICES.items():
        value: Any = config
        for name in key.split("."):
            value = getattr(value, name)
        _require(value in choices, f"{key}={value!r} is not one of: {', '.join(choices)}")
    model, data, optim, pretrain = config.model, config.data, config.optim, config.pretrain
    _require(
        1 <= model.cnn_blocks <= MAX_BLOCKS,
        f"model.cnn_blocks={model.cnn_blocks} must be in 1..{MAX_BLOCKS}",
    )
    _require(model.cross_blocks >= 0, f"model.cross_blocks={model.cross_blocks} must be >= 0")
    _require(model.self_blocks >= 0, f"model.self_blocks={model.self_blocks} must be >= 0")
    _require(
        model.arch == "baseline" or model.cross_blocks + model.self_blocks > 0,
        "model.cross_blocks and model.self_blocks are both 0: the hybrid needs attention",
    )
    _require(
        -1 <= model.freeze_cnn_blocks <= MAX_BLOCKS,
        f"model.freeze_cnn_blocks={model.freeze_cnn_blocks} must be in -1..{MAX_BLOCKS}",
    )
    _require(1 <= data.split <= 3, f"data.split={data.split} must be 1, 2 or 3")
    _require(len(data.resize) == 2, f"data.resize={data.resize} must be [height, width]")
    _require(len(data.mean) == 3 and len(data.std) == 3, "data.mean and data.std need 3 values")
    _require(data.num_frames >= 1, f"data.num_frames={data.num_frames} must be >= 1")
    _require(data.clip_duration > 0, f"data.clip_duration={data.clip_duration} must be > 0")
    _require(0 < data.val_fraction < 1, f"data.val_fraction={data.val_fraction} must be in (0, 1)")
    _require(data.batch_size >= 1, f"data.batch_size={data.batch_size} must be >= 1")
    evaluation = config.eval
    _require(
        evaluation.num_frames is None or evaluation.num_frames >= 1,
        f"eval.num_frames={evaluation.num_frames} must be >= 1 (or null: data.num_frames)",
    )
    _require(
        evaluation.clip_duration is None or evaluation.clip_duration > 0,
        f"eval.clip_duration={evaluation.clip_duration} must be > 0 (or null: data.clip_duration)",
    )
    _require(
        evaluation.num_clips >= 0 and evaluation.max_clips >= 0,
        f"eval.num_clips={evaluation.num_clips} and eval.max_clips={evaluation.max_clips}"
        " must be >= 0",
    )
    _require(
        config.trainer.val_every_n_epochs >= 1,
        f"trainer.val_every_n_epochs={config.trainer.val_every_n_epochs} must be >= 1",
    )
    _require(
        0 < data.label_fraction <= 1,
        f"data.label_fraction={data.label_fraction} must be in (0, 1]",
    )
    _require(
        data.classes is None or len(data.classes) >= 2,
        f"data.classes={data.classes} must name at least 2 classes",
    )
    _validate_synthetic(data.synthetic)
    _require(optim.lr > 0, f"optim.lr={optim.lr} must be > 0")
    _require(optim.cnn_lr is None or optim.cnn_lr > 0, f"optim.cnn_lr={optim.cnn_lr} must be > 0")
    _require(0 < optim.layer_decay <= 1, f"optim.layer_decay={optim.layer_decay} must be in (0, 1]")
    _require(
        0 < pretrain.mask_ratio < 1, f"pretrain.mask_ratio={pretrain.mask_ratio} must be in (0, 1)"
    )
    _require(pretrain.mask_block >= 1, f"pretrain.mask_block={pretrain.mask_block} must be >= 1")
    _require(
        not (data.dataset == "synthetic" and data.horizontal_flip),
        "data.horizontal_flip=true on the synthetic set would turn moving_left into moving_right:"
        " its classes are told apart by direction; set data.horizontal_flip=false",
    )


def _validate_synthetic(synthetic: SyntheticConfig) -> None:
    from convperceiver.data.synthetic_render import SYNTHETIC_CLASSES  # numpy only

    most = len(SYNTHETIC_CLASSES)
    _require(
        synthetic.classes % 2 == 0 and 2 <= synthetic.classes <= most,
        f"data.synthetic.classes={synthetic.classes} must be an even number from 2 to {most}"
        " (classes come in time-reversed pairs)",
    )
    for key, (low, why) in SYNTHETIC_MINIMUMS.items():
        value = getattr(synthetic, key)
        _require(value >= low, f"data.synthetic.{key}={value} must be >= {low} ({why})")


def save_config(config: Config, path: str | Path) -> None:
    """Write the resolved config as YAML, so a run folder says exactly what produced it."""
    Path(path).write_text(OmegaConf.to_yaml(OmegaConf.structured(config)))


def to_dict(config: Config) -> dict[str, Any]:
    return dataclasses.asdict(config)
