"""The hybrid classifier and the plain R(2+1)D-18 baseline.

Hybrid: clip (B, 3, T, H, W) -> features (B, C, T', H', W') -> tokens (B, M, C + P)
        -> latents (B, N, D) -> [CLS; latents] (B, 1 + N, D) -> logits (B, K)
Self-attention only: tokens (B, M, C) -> [CLS; tokens] (B, 1 + M, C) -> logits (B, K)
Baseline: features (B, 512, T', H', W') -> global average pool (B, 512) -> logits (B, K)
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from einops import rearrange, repeat
from torch import Tensor, nn

from convperceiver.models.attention import (
    CrossAttentionBlock,
    SelfAttentionBlock,
    fourier_channels,
    fourier_position_features,
)
from convperceiver.models.backbone import TruncatedR2Plus1D


class FreezableClassifier(nn.Module):
    """Frozen parts get no gradient and keep their BatchNorm statistics in train mode too."""

    def __init__(self) -> None:
        super().__init__()
        self._frozen: list[nn.Module] = []

    def freeze(self, modules: Iterable[nn.Module | nn.Parameter]) -> None:
        for module in modules:
            if isinstance(module, nn.Parameter):
                module.requires_grad_(False)
                continue
            module.requires_grad_(False)
            module.eval()
            self._frozen.append(module)

    def freeze_cnn_blocks(self, count: int) -> None:
        """Freeze the stem and the first `count` blocks; -1 freezes the whole CNN."""
        if count == 0:
            return
        blocks = self.backbone.blocks()
        self.freeze([self.backbone.stem, *(blocks if count < 0 else blocks[:count])])

    def train(self, mode: bool = True) -> FreezableClassifier:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self


class ConvPerceiver(FreezableClassifier):
    """A truncated R(2+1)D-18 read by Perceiver latents: G x [1 cross + L self] attention."""

    def __init__(
        self,
        *,
        backbone: TruncatedR2Plus1D,
        num_classes: int,
        cross_blocks: int = 1,
        self_blocks: int = 1,
        num_latents: int = 256,
        latent_dim: int = 512,
        cross_heads: int = 1,
        cross_head_dim: int = 64,
        self_heads: int = 8,
        self_head_dim: int = 64,
        ff_mult: int = 4,
        fourier_bands: int = 6,
        max_freq: float = 10.0,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if cross_blocks + self_blocks == 0:
            raise ValueError("cross_blocks and self_blocks are both 0")
        self.backbone = backbone
        self.fourier_bands = fourier_bands
        self.max_freq = max_freq
        self._positions: dict[tuple, Tensor] = {}
        channels = backbone.out_channels
        # Self-attention only runs on the CNN tokens at the CNN's width, as the seed did.
        self.self_only = cross_blocks == 0
        width = channels if self.self_only else latent_dim
        self.width = width

        def self_attention_layers() -> nn.ModuleList:
            return nn.ModuleList(
                SelfAttentionBlock(
                    dim=width,
                    heads=self_heads,
                    head_dim=self_head_dim,
                    ff_mult=ff_mult,
                    dropout=dropout,
                )
                for _ in range(self_blocks)
            )

        if self.self_only:
            self.latents = None
            self.cross_blocks = nn.ModuleList()
            self.self_blocks = nn.ModuleList([self_attention_layers()])
        else:
            self.latents = nn.Parameter(torch.randn(num_latents, latent_dim))
            token_dim = channels + fourier_channels(3, fourier_bands)
            self.cross_blocks = nn.ModuleList(
                CrossAttentionBlock(
                    latent_dim=latent_dim,
                    token_dim=token_dim,
                    heads=cross_heads,
                    head_dim=cross_head_dim,
                    ff_mult=ff_mult,
                    dropout=dropout,
                )
                for _ in range(cross_blocks)
            )
            self.self_blocks = nn.ModuleList(self_attention_layers() for _ in range(cross_blocks))
        # With no self-attention there is nothing to mix a CLS token in: mean-pool instead.
        self.cls_token = nn.Parameter(torch.randn(1, 1, width)) if self_blocks > 0 else None
        self.norm = nn.LayerNorm(width)
        self.fc = nn.Linear(width, num_classes)

    def cross_attention_parameters(self) -> list[nn.Parameter]:
        """The latents and every cross-attention block: what `freeze_cross_attention` freezes."""
        if self.latents is None:
            return []
        return [self.latents, *self.cross_blocks.parameters()]

    def freeze_cross_attention(self) -> None:
        if self.latents is not None:
            self.freeze([self.latents, *self.cross_blocks])

    def position_features(self, grid: tuple[int, int, int], like: Tensor) -> Tensor:
        """(M, P) Fourier features, computed once per grid shape, device and dtype."""
        key = (grid, like.device, like.dtype)
        if key not in self._positions:
            features = fourier_position_features(
                grid, bands=self.fourier_bands, max_freq=self.max_freq, device=like.device
            )
            self._positions[key] = features.to(like.dtype)
        return self._positions[key]

    def tokens(self, features: Tensor) -> Tensor:
        """(B, C, T', H', W') -> (B, M, C [+ P]) with M = T' H' W'."""
        tokens = rearrange(features, "b c t h w -> b (t h w) c")
        if self.self_only:
            return tokens
        positions = self.position_features(tuple(features.shape[2:]), tokens)
        positions = repeat(positions, "m p -> b m p", b=tokens.shape[0])
        return torch.cat([tokens, positions], dim=-1)

    def forward_features(self, clip: Tensor) -> Tensor:
        """clip (B, 3, T, H, W) -> latents (B, [1 +] N, D), CLS first when there is one."""
        return self.forward_tokens(self.tokens(self.backbone(clip)))

    def forward_tokens(self, tokens: Tensor) -> Tensor:
        """tokens (B, M, C [+ P]) -> latents (B, [1 +] N, D): any subset of tokens."""
        batch = tokens.shape[0]
        latents = tokens if self.self_only else repeat(self.latents, "n d -> b n d", b=batch)
        for index, self_layers in enumerate(self.self_blocks):
            if not self.self_only:
                latents = self.cross_blocks[index](latents, tokens)
            if index == 0 and self.cls_token is not None:
                # The CLS token joins after the first read of the tokens, before self-attention.
                cls = self.cls_token.expand(batch, -1, -1)
                latents = torch.cat([cls, latents], dim=1)
            for layer in self_layers:
                latents = layer(latents)
        return latents

    def forward_head(self, latents: Tensor, pre_logits: bool = False) -> Tensor:
        pooled = latents[:, 0] if self.cls_token is not None else latents.mean(dim=1)
        pooled = self.norm(pooled)
        return pooled if pre_logits else self.fc(pooled)

    def forward(self, clip: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(clip))


class R2Plus1DClassifier(FreezableClassifier):
    """The seed's baseline: the full R(2+1)D-18, its global average pool and a new linear head."""

    def __init__(
        self, *, backbone: TruncatedR2Plus1D, num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.out_channels, num_classes)

    def forward_features(self, clip: Tensor) -> Tensor:
        return self.backbone(clip)

    def forward_head(self, features: Tensor, pre_logits: bool = False) -> Tensor:
        pooled = features.mean(dim=(2, 3, 4))  # (B, C)
        return pooled if pre_logits else self.fc(self.dropout(pooled))

    def forward(self, clip: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(clip))
