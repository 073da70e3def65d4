"""Rotary position embeddings (notes/rope.md): the score depends on m - n only (rope.3), the two pair
conventions are one model up to a fixed permutation (rope.5), the backward is the inverse rotation
(rope.6), the offset makes a cached step equal the whole sequence, PyTorch agrees, bad input fails."""

import numpy as np
import pytest

from transformer_np.layers.kv_cache import SelfAttentionCache
from transformer_np.layers.masks import causal_mask
from transformer_np.layers.multihead import MultiHeadAttention
from transformer_np.layers.rotary import RotaryEmbedding, halves_permutation, rope_angles

DH = 10


def rotated(x, m, style):
    """x (..., Dh) rotated as the token at position m: x of shape (Dh,) becomes (1, 1, 1, Dh)."""
    return RotaryEmbedding(DH, style).forward(np.asarray(x, dtype=np.float64).reshape(1, 1, 1, -1), offset=m)[0, 0, 0]


@pytest.mark.parametrize("style", ["pairs", "halves"])
def test_the_score_depends_on_the_distance_only(style):
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal(DH), rng.standard_normal(DH)
    for m, n in [(0, 0), (3, 7), (50, 12), (1000, 993)]:
        score = rotated(q, m, style) @ rotated(k, n, style)
        for shift in (1, 17, 4096):
            assert abs(rotated(q, m + shift, style) @ rotated(k, n + shift, style) - score) < 1e-10
    # and it does depend on the distance (a constant would pass the test above too)
    assert abs(rotated(q, 5, style) @ rotated(k, 0, style) - rotated(q, 0, style) @ rotated(k, 0, style)) > 1e-3


def test_the_score_is_the_closed_form_of_rope_3():
    rng = np.random.default_rng(1)
    q, k = rng.standard_normal(DH), rng.standard_normal(DH)
    m, n = 9, 4
    angle = rope_angles([m - n], DH)[0]
    q1, q2, k1, k2 = q[0::2], q[1::2], k[0::2], k[1::2]
    expected = np.sum((q1 * k1 + q2 * k2) * np.cos(angle) + (q1 * k2 - q2 * k1) * np.sin(angle))
    assert abs(rotated(q, m, "pairs") @ rotated(k, n, "pairs") - expected) < 1e-12


def test_the_two_conventions_differ_by_a_fixed_permutation():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 3, 6, DH))
    perm = halves_permutation(DH)
    assert sorted(perm) == list(range(DH)) and list(perm[:3]) == [0, 2, 4]
    pairs, halves = RotaryEmbedding(DH, "pairs"), RotaryEmbedding(DH, "halves")
    np.testing.assert_allclose(halves.forward(x[..., perm], offset=5), pairs.forward(x, offset=5)[..., perm],
                               rtol=0, atol=1e-13)  # (rope.5)
    # not the same function without the permutation
    assert np.abs(halves.forward(x) - pairs.forward(x)).max() > 1e-2


def test_a_pairs_model_with_permuted_projections_is_a_halves_model():
    rng = np.random.default_rng(3)
    H, D = 3, 3 * DH
    pairs = MultiHeadAttention(D, H, rope="pairs", rng=rng, dtype=np.float64)
    halves = MultiHeadAttention(D, H, rope="halves", rng=rng, dtype=np.float64)
    perm = halves_permutation(DH)
    columns = np.concatenate([h * DH + perm for h in range(H)])  # each head's block permuted
    for name in ("w_q", "w_k", "w_v", "w_o"):
        getattr(halves, name).weight.data[...] = getattr(pairs, name).weight.data
        getattr(halves, name).bias.data[...] = getattr(pairs, name).bias.data
    for name in ("w_q", "w_k"):
        getattr(halves, name).weight.data[...] = getattr(pairs, name).weight.data[:, columns]
        getattr(halves, name).bias.data[...] = getattr(pairs, name).bias.data[columns]
    x = rng.standard_normal((2, 7, D))
    mask = causal_mask(7)
    np.testing.assert_allclose(halves.forward(x, mask=mask), pairs.forward(x, mask=mask), rtol=0, atol=1e-12)


@pytest.mark.parametrize("style", ["pairs", "halves"])
def test_the_backward_is_the_inverse_rotation(style):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 5, DH))
    rope = RotaryEmbedding(DH, style)
    y = rope.forward(x, offset=11)
    assert np.abs(y - x).max() > 1e-2
    np.testing.assert_allclose(rope.backward(y), x, rtol=0, atol=1e-13)  # R R^T = I
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-13)


def test_the_offset_gives_the_rows_of_the_whole_sequence():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 9, DH))
    rope = RotaryEmbedding(DH)
    whole = rope.forward(x)
    np.testing.assert_allclose(rope.forward(x[:, :, 4:], offset=4), whole[:, :, 4:], rtol=0, atol=1e-14)


def test_cached_attention_with_rope_equals_the_whole_sequence():
    rng = np.random.default_rng(6)
    mha = MultiHeadAttention(4 * DH, 4, 2, rope="halves", rng=rng, dtype=np.float64).eval()
    x = rng.standard_normal((2, 8, 4 * DH))
    whole = mha.forward(x, mask=causal_mask(8))
    cache = SelfAttentionCache(2, 2, DH, 8, like=x)
    steps = [mha.forward(x[:, :3], mask=causal_mask(3), cache=cache)]
    steps += [mha.forward(x[:, t:t + 1], cache=cache) for t in range(3, 8)]
    assert np.abs(np.concatenate(steps, axis=1) - whole).max() < 1e-12


@pytest.mark.parametrize("style", ["pairs", "halves"])
def test_rope_agrees_with_pytorch(style):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(7)
    x, dy = rng.standard_normal((2, 3, 6, DH)), rng.standard_normal((2, 3, 6, DH))
    rope = RotaryEmbedding(DH, style)
    y = rope.forward(x, offset=2)
    dx = rope.backward(dy)
    # PyTorch reference, the complex-number form: pair (a, b) is a + ib, times e^{i m theta}
    xt = torch.tensor(x, requires_grad=True)
    theta = 10000.0 ** (-torch.arange(0, DH, 2, dtype=torch.float64) / DH)
    angle = torch.arange(2, 8, dtype=torch.float64)[:, None] * theta
    if style == "pairs":
        z = torch.view_as_complex(xt.reshape(2, 3, 6, DH // 2, 2).contiguous())
        yt = torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).reshape(2, 3, 6, DH)
    else:
        z = torch.complex(xt[..., : DH // 2], xt[..., DH // 2:]) * torch.polar(torch.ones_like(angle), angle)
        yt = torch.cat([z.real, z.imag], dim=-1)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=0, atol=1e-13)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=0, atol=1e-13)


def test_bad_input_names_expected_and_received():
    with pytest.raises(ValueError, match=r"even head dimension.*received d_head=7"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match=r"even head dimension.*received d_head=7"):
        MultiHeadAttention(21, 3, rope="halves")
    with pytest.raises(ValueError, match=r"style one of 'pairs', 'halves', received 'interleaved'"):
        RotaryEmbedding(8, "interleaved")
    rope = RotaryEmbedding(8)
    with pytest.raises(ValueError, match=r"offset: expected a non-negative int, received -1"):
        rope.forward(np.zeros((1, 1, 2, 8)), offset=-1)
    with pytest.raises(ValueError, match=r"8.*6"):
        rope.forward(np.zeros((1, 1, 2, 6)))
