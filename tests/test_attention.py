import math

import pytest
import torch

from convperceiver.models.attention import (
    Attention,
    CrossAttentionBlock,
    fourier_channels,
    fourier_position_features,
)


def reference_attention(module: Attention, x, context):
    """softmax(Q K^T / sqrt(d)) V written out, no fused kernel."""
    heads = module.heads
    q = module.to_q(x)
    k, v = module.to_kv(context).chunk(2, dim=-1)

    def split(t):
        b, n, _ = t.shape
        return t.reshape(b, n, heads, -1).transpose(1, 2)

    q, k, v = map(split, (q, k, v))
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
    return module.to_out(out)


@pytest.mark.parametrize("heads,context_dim", [(1, 40), (8, None), (4, 24)])
def test_sdpa_attention_equals_plain_reference(heads, context_dim):
    torch.manual_seed(0)
    module = Attention(query_dim=32, context_dim=context_dim, heads=heads, head_dim=16).eval()
    x = torch.randn(2, 7, 32)
    context = torch.randn(2, 50, context_dim) if context_dim else x
    expected = reference_attention(module, x, context)
    actual = module(x, context if context_dim else None)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


def test_attention_weights_are_a_distribution_over_tokens():
    torch.manual_seed(0)
    block = CrossAttentionBlock(latent_dim=32, token_dim=20, heads=2, head_dim=8)
    weights = block.attention_weights(torch.randn(3, 5, 32), torch.randn(3, 11, 20))
    assert weights.shape == (3, 2, 5, 11)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))


def test_fourier_features_layout():
    features = fourier_position_features((2, 3, 4), bands=6, max_freq=10.0)
    assert features.shape == (24, fourier_channels(3, 6)) == (24, 39)
    per_axis = features.reshape(2, 3, 4, 3, 13)
    # The last feature of each axis is the raw position, spanning [-1, 1].
    torch.testing.assert_close(per_axis[:, 0, 0, 0, -1], torch.tensor([-1.0, 1.0]))
    torch.testing.assert_close(per_axis[0, 0, :, 2, -1], torch.linspace(-1, 1, 4))
    # First band: f = 1, so sin(pi x) and cos(pi x).
    x = per_axis[0, :, 0, 1, -1]
    torch.testing.assert_close(per_axis[0, :, 0, 1, 0], torch.sin(math.pi * x))
    torch.testing.assert_close(per_axis[0, :, 0, 1, 6], torch.cos(math.pi * x))
    # Highest band: f = max_freq / 2.
    torch.testing.assert_close(per_axis[0, :, 0, 1, 5], torch.sin(5 * math.pi * x))
