"""attention_and_keys against an explicit softmax(q k^T / sqrt(d)) from the last block's weights."""

from __future__ import annotations

import pytest
import torch
from lcd_embed import attention_and_keys


def naive_last_block(model, x):
    """Full (B, heads, N, N) attention and keys recomputed by hand from the block's parameters."""
    with torch.no_grad():
        t = model.patch_embed(x)
        t = model._pos_embed(t)
        t = model.norm_pre(t)
        for blk in model.blocks[:-1]:
            t = blk(t)
        blk = model.blocks[-1]
        h = blk.norm1(t)
        w, b = blk.attn.qkv.weight, blk.attn.qkv.bias
        heads = blk.attn.num_heads
        d = w.shape[0] // 3 // heads
        outs = []
        for i in range(3):  # q, k, v blocks of the fused projection, split by head
            proj = h @ w[i * heads * d : (i + 1) * heads * d].T + b[i * heads * d : (i + 1) * heads * d]
            outs.append(proj.reshape(h.shape[0], h.shape[1], heads, d).transpose(1, 2))
        q, k, _ = outs
        attn = torch.exp(q @ k.transpose(-1, -2) / d**0.5)
        attn = attn / attn.sum(-1, keepdim=True)
    return attn, k


@pytest.mark.parametrize("hw", [(32, 32), (48, 80)])
def test_cls_attention_matches_naive(tiny_vit, hw):
    model, _ = tiny_vit(in_chans=3, seed=1)
    x = torch.randn(2, 3, *hw)
    out = attention_and_keys(model, x)
    gh, gw = hw[0] // 16, hw[1] // 16
    assert out["grid"] == (gh, gw)
    assert out["cls_attention"].shape == (2, 2, gh * gw)
    rows = out["cls_attention"].sum(-1) + out["cls_attention_prefix"].sum(-1)
    torch.testing.assert_close(rows, torch.ones_like(rows))
    attn, k = naive_last_block(model, x)
    torch.testing.assert_close(out["cls_attention"], attn[:, :, 0, 1:], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out["cls_attention_prefix"], attn[:, :, 0, :1], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(out["keys"], k[:, :, 1:], rtol=1e-4, atol=1e-5)
    with torch.no_grad():
        feats = model.forward_features(x)
    torch.testing.assert_close(out["patch_tokens"], feats[:, 1:])
    torch.testing.assert_close(out["cls_token"], model(x))


def test_matches_timm_unfused_attention(tiny_vit):
    """Second oracle: timm's own non-fused path materialises the matrix; capture it at attn_drop."""
    model, _ = tiny_vit(in_chans=1, seed=2)
    x = torch.randn(1, 1, 64, 48)
    ours = attention_and_keys(model, x)  # fused (scaled_dot_product_attention) path
    attn_mod = model.blocks[-1].attn
    attn_mod.fused_attn = False
    seen = {}
    handle = attn_mod.attn_drop.register_forward_hook(lambda m, i, o: seen.setdefault("attn", o))
    with torch.no_grad():
        model(x)
    handle.remove()
    torch.testing.assert_close(ours["cls_attention"], seen["attn"][:, :, 0, 1:], rtol=1e-4, atol=1e-6)
