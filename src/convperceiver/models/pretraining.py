"""Masked video modelling: the encoder reads the visible tubes, a decoder predicts the masked.

clip (B, 3, T, H, W), mask (B, T', H', W') True = masked
-> masked CNN -> tokens (B, M, C + P) -> visible tokens (B, V, C + P)
   hybrid:   latents read the visible tokens -> [CLS; latents] -> LayerNorm -> context (B, 1 + N, D)
   baseline: context = the visible tokens (B, V, C + P)
-> queries (B, Q, E): Linear(Fourier position of each masked cell) + a learned mask embedding
-> cross-attention to the context -> decoder_depth self-attention -> LayerNorm
-> pixel tubes (B, Q, t h w 3) [+ a frozen teacher CNN's features (B, Q, C_teacher)]

The target tube of a token cell is the (t, h, w) = CNN stride block of input pixels it covers,
normalised per tube and channel as VideoMAE does. The loss is the MSE over masked cells only.
After pretraining the decoder is dropped and `encoder.*` holds the classifier's weights
(without `fc`) for fine-tuning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from convperceiver.config import ModelConfig
from convperceiver.errors import ConfigError
from convperceiver.models import build_model
from convperceiver.models.attention import (
    CrossAttentionBlock,
    SelfAttentionBlock,
    fourier_channels,
    fourier_position_features,
)
from convperceiver.models.backbone import BLOCK_STRIDES, MAX_BLOCKS, output_grid
from convperceiver.models.classifier import ConvPerceiver, R2Plus1DClassifier
from convperceiver.models.masking import convert_to_masked, masked_forward, tube_mask

TARGET_EPS = 1e-6  # VideoMAE's: tube pixels / (std + eps)


def cnn_stride(cnn_blocks: int) -> tuple[int, int, int]:
    """(t, h, w) input pixels per token cell: the stem halves space, each stride-2 layer all."""
    halvings = sum(stride == 2 for stride in BLOCK_STRIDES[:cnn_blocks])
    return 2**halvings, 2 ** (halvings + 1), 2 ** (halvings + 1)


def encoder_blocks(model_config: ModelConfig) -> int:
    return MAX_BLOCKS if model_config.arch == "baseline" else model_config.cnn_blocks


def token_grid(
    model_config: ModelConfig, frames: int, height: int, width: int
) -> tuple[int, int, int]:
    """The (T', H', W') grid a mask is drawn on, for clips of frames x height x width."""
    blocks = encoder_blocks(model_config)
    stride = cnn_stride(blocks)
    if any(size % step for size, step in zip((frames, height, width), stride, strict=True)):
        raise ConfigError(
            f"a {frames}x{height}x{width} clip (frames x height x width) does not split into "
            f"the {stride[0]}x{stride[1]}x{stride[2]} pixel tubes of one token of a "
            f"{blocks}-block CNN: use frames divisible by {stride[0]} and a crop size "
            f"divisible by {stride[1]}"
        )
    return output_grid(blocks, frames, height, width)


def patchify(clip: Tensor, tube: tuple[int, int, int]) -> Tensor:
    """clip (B, 3, T, H, W) -> (B, M, t h w, 3): each token cell's pixel tube, cells row-major."""
    t, h, w = tube
    return rearrange(clip, "b c (gt t) (gh h) (gw w) -> b (gt gh gw) (t h w) c", t=t, h=h, w=w)


def unpatchify(tubes: Tensor, grid: tuple[int, int, int], tube: tuple[int, int, int]) -> Tensor:
    """(B, M, t h w, 3) -> clip (B, 3, T, H, W), the inverse of `patchify`."""
    (gt, gh, gw), (t, h, w) = grid, tube
    pattern = "b (gt gh gw) (t h w) c -> b c (gt t) (gh h) (gw w)"
    return rearrange(tubes, pattern, gt=gt, gh=gh, gw=gw, t=t, h=h, w=w)


def tube_statistics(tubes: Tensor) -> tuple[Tensor, Tensor]:
    """Per tube and channel mean and std (unbiased) over the tube's pixels, as VideoMAE."""
    return tubes.mean(dim=-2, keepdim=True), tubes.var(dim=-2, keepdim=True).sqrt()


def gather(tokens: Tensor, keep: Tensor) -> Tensor:
    """tokens (B, M, D), keep (B, M) bool with K per sample -> (B, K, D), in grid order."""
    return tokens[keep].reshape(tokens.shape[0], -1, tokens.shape[-1])


@dataclass
class PretrainOutput:
    loss: Tensor  # scalar: pixel_loss + teacher_weight * teacher_loss
    pixel_loss: Tensor  # scalar MSE over masked cells
    teacher_loss: Tensor | None  # scalar MSE to the teacher's features; None without a teacher
    predictions: Tensor  # (B, Q, t h w 3) the Q masked cells' tubes, grid order, (t h w) then c
    targets: Tensor  # (B, Q, t h w 3), per-tube normalised when normalize_target is on
    mask: Tensor  # (B, T', H', W') bool, True = masked


class QueryDecoder(nn.Module):
    """Perceiver-IO decoder: one query per masked cell, from its position, reads the context."""

    def __init__(
        self,
        *,
        position_dim: int,
        context_dim: int,
        dim: int = 128,
        depth: int = 0,
        heads: int = 4,
        ff_mult: int = 4,
    ) -> None:
        super().__init__()
        self.to_query = nn.Linear(position_dim, dim)
        self.mask_embedding = nn.Parameter(torch.randn(dim) * 0.02)
        self.cross = CrossAttentionBlock(
            latent_dim=dim,
            token_dim=context_dim,
            heads=heads,
            head_dim=dim // heads,
            ff_mult=ff_mult,
        )
        self.self_blocks = nn.ModuleList(
            SelfAttentionBlock(dim=dim, heads=heads, head_dim=dim // heads, ff_mult=ff_mult)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, positions: Tensor, context: Tensor) -> Tensor:
        """positions (B, Q, P), context (B, N, D_context) -> (B, Q, dim)."""
        queries = self.to_query(positions) + self.mask_embedding
        queries = self.cross(queries, context)
        for block in self.self_blocks:
            queries = block(queries)
        return self.norm(queries)


class MaskedVideoModel(nn.Module):
    """A classifier's encoder pretrained by predicting masked pixel tubes (and teacher features).

    The classifier's `fc` becomes `nn.Identity`: the head is unused here, and DDP rejects
    parameters that get no gradient. The encoder's backbone is converted in place to masked
    convolution (`convert_to_masked`); its state_dict keys are unchanged.

    The teacher is kept out of the registered submodules, so it is in neither `parameters()`
    nor `state_dict()` (checkpoints stay small, optimizers and DDP never see it), and
    `train()` never reaches it: it stays frozen and in eval mode. As `.to()` does not reach it
    either, it follows the clip's device and dtype at its first use.
    """

    def __init__(
        self,
        *,
        encoder: ConvPerceiver | R2Plus1DClassifier,
        mask_ratio: float = 0.75,
        mask_block: int = 1,
        decoder_dim: int = 128,
        decoder_depth: int = 0,
        decoder_heads: int = 4,
        decoder_ff_mult: int = 4,
        normalize_target: bool = True,
        teacher: nn.Module | None = None,
        teacher_weight: float = 1.0,
        fourier_bands: int = 6,
        max_freq: float = 10.0,
    ) -> None:
        super().__init__()
        if isinstance(encoder, ConvPerceiver):
            if encoder.self_only:
                raise ValueError("a self-attention-only encoder has no latents to decode from")
            context_dim = encoder.width
            fourier_bands, max_freq = encoder.fourier_bands, encoder.max_freq
        elif isinstance(encoder, R2Plus1DClassifier):
            context_dim = encoder.backbone.out_channels + fourier_channels(3, fourier_bands)
        else:
            raise ValueError(f"cannot pretrain a {type(encoder).__name__}")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio={mask_ratio} must be in (0, 1)")
        if decoder_depth < 0 or decoder_dim % decoder_heads:
            raise ValueError(
                f"decoder_depth={decoder_depth} must be >= 0 and decoder_dim={decoder_dim} "
                f"divisible by decoder_heads={decoder_heads}"
            )
        if teacher is not None and not isinstance(getattr(teacher, "out_channels", None), int):
            raise ValueError("the teacher needs an `out_channels` attribute, as TruncatedR2Plus1D")
        encoder.fc = nn.Identity()
        convert_to_masked(encoder.backbone)
        self.encoder = encoder
        self.hybrid = isinstance(encoder, ConvPerceiver)
        if mask_block < 1:
            raise ValueError(f"mask_block={mask_block} must be >= 1")
        self.mask_ratio = mask_ratio
        self.mask_block = mask_block
        self.normalize_target = normalize_target
        self.teacher_weight = teacher_weight
        self.fourier_bands, self.max_freq = fourier_bands, max_freq
        self.tube = cnn_stride(encoder.backbone.cnn_blocks)
        self._positions: dict[tuple, Tensor] = {}
        self.decoder = QueryDecoder(
            position_dim=fourier_channels(3, fourier_bands),
            context_dim=context_dim,
            dim=decoder_dim,
            depth=decoder_depth,
            heads=decoder_heads,
            ff_mult=decoder_ff_mult,
        )
        self.pixel_head = nn.Linear(decoder_dim, 3 * math.prod(self.tube))
        self._teacher = [teacher.requires_grad_(False).eval()] if teacher is not None else []
        self.teacher_head = (
            nn.Linear(decoder_dim, teacher.out_channels) if teacher is not None else None
        )

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def grid(self, clip: Tensor) -> tuple[int, int, int]:
        """The token grid (T', H', W') of `clip`; its size must be a multiple of the tube."""
        size = tuple(clip.shape[2:])
        if clip.ndim != 5 or any(n % step for n, step in zip(size, self.tube, strict=False)):
            raise ValueError(
                f"clip of shape {tuple(clip.shape)} is not (B, 3, T, H, W) with (T, H, W) "
                f"multiples of the tube {self.tube}"
            )
        return tuple(n // step for n, step in zip(size, self.tube, strict=True))

    def random_mask(self, clip: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """A tube mask at `mask_ratio` on `clip`'s token grid, on its device.

        With `mask_block` b > 1 the mask is drawn on a grid b times coarser in height and width
        and each of its cells covers b x b tokens, so a masked token's neighbours are mostly
        masked too and cannot simply be interpolated.
        """
        frames, height, width = self.grid(clip)
        block = self.mask_block
        if height % block or width % block:
            raise ValueError(
                f"a {height}x{width} token grid does not split into {block}x{block} mask blocks"
            )
        coarse = tube_mask(
            clip.shape[0],
            (frames, height // block, width // block),
            ratio=self.mask_ratio,
            generator=generator,
            device=clip.device,
        )
        return coarse.repeat_interleave(block, dim=2).repeat_interleave(block, dim=3)

    def position_features(self, grid: tuple[int, int, int], like: Tensor) -> Tensor:
        """(M, P) Fourier features of the grid's cells, the ones the encoder's tokens carry."""
        if self.hybrid:
            return self.encoder.position_features(grid, like)
        key = (grid, like.device, like.dtype)
        if key not in self._positions:
            features = fourier_position_features(
                grid, bands=self.fourier_bands, max_freq=self.max_freq, device=like.device
            )
            self._positions[key] = features.to(like.dtype)
        return self._positions[key]

    def encode(self, features: Tensor, visible: Tensor) -> Tensor:
        """features (B, C, T', H', W'), visible (B, M) -> the decoder's context (B, N, D)."""
        if self.hybrid:
            tokens = gather(self.encoder.tokens(features), visible)  # (B, V, C + P)
            return self.encoder.norm(self.encoder.forward_tokens(tokens))  # (B, [1 +] N, D)
        tokens = rearrange(features, "b c t h w -> b (t h w) c")
        positions = self.position_features(tuple(features.shape[2:]), tokens)
        positions = repeat(positions, "m p -> b m p", b=tokens.shape[0])
        return gather(torch.cat([tokens, positions], dim=-1), visible)  # (B, V, C + P)

    def pixel_targets(self, clip: Tensor, masked: Tensor) -> Tensor:
        """(B, Q, t h w 3): the masked cells' pixel tubes of the unmasked clip."""
        tubes = gather(rearrange(patchify(clip.float(), self.tube), "b m n c -> b m (n c)"), masked)
        if not self.normalize_target:
            return tubes
        tubes = rearrange(tubes, "b q (n c) -> b q n c", c=3)
        mean, std = tube_statistics(tubes)
        return rearrange((tubes - mean) / (std + TARGET_EPS), "b q n c -> b q (n c)")

    @torch.no_grad()
    def teacher_targets(self, clip: Tensor, masked: Tensor, grid: tuple[int, int, int]) -> Tensor:
        """(B, Q, C_teacher): the teacher's LayerNorm-ed features of the unmasked clip."""
        teacher = self.teacher.eval()
        weight = next(teacher.parameters(), None)
        if weight is not None and (weight.device, weight.dtype) != (clip.device, clip.dtype):
            teacher.to(clip)
        # A teacher with another stride is pooled (or repeated) onto the student's grid.
        features = F.adaptive_avg_pool3d(teacher(clip), grid)  # (B, C_teacher, T', H', W')
        tokens = rearrange(features.float(), "b c t h w -> b (t h w) c")
        return gather(F.layer_norm(tokens, tokens.shape[-1:]), masked)

    def forward(self, clip: Tensor, mask: Tensor) -> PretrainOutput:
        """clip (B, 3, T, H, W) float, mask (B, T', H', W') bool, the same count per sample."""
        grid = self.grid(clip)
        if tuple(mask.shape) != (clip.shape[0], *grid) or mask.dtype != torch.bool:
            raise ValueError(f"mask must be bool of shape {(clip.shape[0], *grid)}")
        masked = rearrange(mask, "b t h w -> b (t h w)")
        counts = masked.sum(dim=1)
        if not bool((counts == counts[0]).all()) or not 0 < int(counts[0]) < masked.shape[1]:
            raise ValueError(f"every sample must mask the same number of cells, got {counts}")
        features = masked_forward(self.encoder.backbone, clip, mask)  # (B, C, T', H', W')
        context = self.encode(features, ~masked)
        positions = self.position_features(grid, context)
        positions = gather(repeat(positions, "m p -> b m p", b=clip.shape[0]), masked)
        decoded = self.decoder(positions, context)  # (B, Q, E)
        predictions = self.pixel_head(decoded)  # (B, Q, t h w 3)
        targets = self.pixel_targets(clip, masked)
        pixel_loss = F.mse_loss(predictions.float(), targets)
        teacher_loss = None
        loss = pixel_loss
        if self.teacher is not None:
            features = self.teacher_head(decoded).float()
            teacher_loss = F.mse_loss(features, self.teacher_targets(clip, masked, grid))
            loss = pixel_loss + self.teacher_weight * teacher_loss
        return PretrainOutput(loss, pixel_loss, teacher_loss, predictions, targets, mask)

    @torch.no_grad()
    def reconstruct(self, clip: Tensor, mask: Tensor) -> Tensor:
        """(B, 3, T, H, W): predicted tubes at masked cells, the input's at visible ones.

        Normalised predictions are mapped back with each target tube's own mean and std, as
        VideoMAE's visualisation does. Call it in eval mode: train mode updates BatchNorm.
        """
        output = self(clip, mask)
        tubes = patchify(clip.float(), self.tube).clone()  # (B, M, n, 3), never the caller's
        masked = rearrange(mask, "b t h w -> b (t h w)")
        predicted = rearrange(output.predictions.float(), "b q (n c) -> (b q) n c", c=3)
        if self.normalize_target:
            mean, std = tube_statistics(tubes[masked])
            predicted = predicted * (std + TARGET_EPS) + mean
        tubes[masked] = predicted
        return unpatchify(tubes, self.grid(clip), self.tube).to(clip.dtype)


def build_pretraining_model(
    model_config: ModelConfig,
    *,
    mask_ratio: float = 0.75,
    mask_block: int = 1,
    decoder_dim: int = 128,
    decoder_depth: int = 0,
    decoder_heads: int = 4,
    normalize_target: bool = True,
    teacher: nn.Module | None = None,
    teacher_weight: float = 1.0,
) -> MaskedVideoModel:
    """The `model` section's classifier as an encoder, with a decoder (the `pretrain` keys)."""
    if model_config.arch == "hybrid" and model_config.cross_blocks < 1:
        raise ConfigError(
            f"model.cross_blocks={model_config.cross_blocks}: masked pretraining needs "
            "cross_blocks >= 1 (self-attention-only tokens carry no positions to decode)"
        )
    if decoder_dim % decoder_heads:
        raise ConfigError(
            f"pretrain.decoder_dim={decoder_dim} is not divisible by "
            f"pretrain.decoder_heads={decoder_heads}"
        )
    if decoder_depth < 0:
        raise ConfigError(f"pretrain.decoder_depth={decoder_depth} must be >= 0")
    return MaskedVideoModel(
        encoder=build_model(model_config, num_classes=1),
        mask_ratio=mask_ratio,
        mask_block=mask_block,
        decoder_dim=decoder_dim,
        decoder_depth=decoder_depth,
        decoder_heads=decoder_heads,
        normalize_target=normalize_target,
        teacher=teacher,
        teacher_weight=teacher_weight,
        fourier_bands=model_config.fourier_bands,
        max_freq=model_config.max_freq,
    )
