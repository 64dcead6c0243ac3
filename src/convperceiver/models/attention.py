"""Perceiver building blocks: Fourier positions, GEGLU feed-forward, SDPA attention, blocks.

Every block is pre-norm with the residual written out in `forward`. Attention goes through
`F.scaled_dot_product_attention`, which never materialises the (queries x keys) matrix on
its fused paths, so self-attention over thousands of CNN tokens fits in memory.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


def fourier_position_features(
    grid: tuple[int, ...], *, bands: int, max_freq: float, device: torch.device | None = None
) -> Tensor:
    """Sin/cos features of each grid cell's position in [-1, 1] per axis, plus the position.

    Returns (prod(grid), len(grid) * (2 * bands + 1)), axis-major: for each axis
    [sin(pi f x) for f in freqs] + [cos(pi f x) for f in freqs] + [x].
    """
    axes = [torch.linspace(-1.0, 1.0, steps=size, device=device) for size in grid]
    positions = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1)  # (*grid, A)
    positions = positions.reshape(-1, len(grid), 1)  # (M, A, 1)
    freqs = torch.linspace(1.0, max_freq / 2, bands, device=device)
    scaled = positions * freqs * math.pi  # (M, A, bands)
    features = torch.cat([scaled.sin(), scaled.cos(), positions], dim=-1)  # (M, A, 2b+1)
    return features.flatten(1)


def fourier_channels(axes: int, bands: int) -> int:
    return axes * (2 * bands + 1)


class GEGLU(nn.Module):
    """Gated GELU: half the channels gate the other half."""

    def forward(self, x: Tensor) -> Tensor:
        x, gates = x.chunk(2, dim=-1)
        return x * F.gelu(gates)


class FeedForward(nn.Module):
    """Linear(D, 2 * mult * D) -> GEGLU -> Linear(mult * D, D)."""

    def __init__(self, dim: int, *, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim * mult * 2),
            GEGLU(),
            nn.Dropout(dropout),
            nn.Linear(dim * mult, dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Attention(nn.Module):
    """Multi-head attention of queries over a context: q and kv without bias, out with bias."""

    def __init__(
        self,
        *,
        query_dim: int,
        context_dim: int | None = None,
        heads: int = 8,
        head_dim: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        inner_dim = heads * head_dim
        self.heads = heads
        self.dropout = dropout
        self.to_q = nn.Linear(query_dim, inner_dim, bias=False)
        self.to_kv = nn.Linear(context_dim or query_dim, inner_dim * 2, bias=False)
        self.to_out = nn.Linear(inner_dim, query_dim)

    def _heads(self, x: Tensor, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        return tuple(rearrange(t, "b n (h d) -> b h n d", h=self.heads) for t in (q, k, v))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        q, k, v = self._heads(x, x if context is None else context)
        dropout = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)  # (B, h, N, d)
        return self.to_out(rearrange(out, "b h n d -> b n (h d)"))

    def attention_weights(self, x: Tensor, context: Tensor) -> Tensor:
        """softmax(QK^T / sqrt(d)) as (B, heads, N, M), for looking at, never for training."""
        q, k, _ = self._heads(x, context)
        return (q @ k.transpose(-2, -1) * q.shape[-1] ** -0.5).softmax(dim=-1)


class CrossAttentionBlock(nn.Module):
    """Latents read the CNN tokens once: pre-norm attention, then a GEGLU feed-forward."""

    def __init__(
        self,
        *,
        latent_dim: int,
        token_dim: int,
        heads: int = 1,
        head_dim: int = 64,
        ff_mult: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_latents = nn.LayerNorm(latent_dim)
        self.norm_tokens = nn.LayerNorm(token_dim)
        self.attend = Attention(
            query_dim=latent_dim,
            context_dim=token_dim,
            heads=heads,
            head_dim=head_dim,
            dropout=dropout,
        )
        self.norm_ff = nn.LayerNorm(latent_dim)
        self.feed_forward = FeedForward(latent_dim, mult=ff_mult, dropout=dropout)

    def forward(self, latents: Tensor, tokens: Tensor) -> Tensor:
        latents = latents + self.attend(self.norm_latents(latents), self.norm_tokens(tokens))
        return latents + self.feed_forward(self.norm_ff(latents))

    def attention_weights(self, latents: Tensor, tokens: Tensor) -> Tensor:
        """(B, heads, N, M): how much each latent reads each token."""
        return self.attend.attention_weights(self.norm_latents(latents), self.norm_tokens(tokens))


class SelfAttentionBlock(nn.Module):
    """Latents (or tokens) attend to each other, then a GEGLU feed-forward."""

    def __init__(
        self,
        *,
        dim: int,
        heads: int = 8,
        head_dim: int = 64,
        ff_mult: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm_attend = nn.LayerNorm(dim)
        self.attend = Attention(query_dim=dim, heads=heads, head_dim=head_dim, dropout=dropout)
        self.norm_ff = nn.LayerNorm(dim)
        self.feed_forward = FeedForward(dim, mult=ff_mult, dropout=dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attend(self.norm_attend(x))
        return x + self.feed_forward(self.norm_ff(x))
