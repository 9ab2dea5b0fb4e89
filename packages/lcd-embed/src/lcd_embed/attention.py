"""Last-block attention and keys of a timm ViT, recomputed from a hook (works with fused attention).

timm's ``Attention`` uses ``F.scaled_dot_product_attention`` and never materialises the attention
matrix, so a forward hook on the last block's ``attn.qkv`` captures its projection output and q, k
are recomputed from it (with the block's ``q_norm``/``k_norm``). Only the CLS query row is formed,
(B, heads, N) memory instead of (B, heads, N, N): a 2160² field at patch 16 has ~18k tokens.
The CLS attention map as a view of what the ViT attends to follows Caron et al. 2021 (DINO, Fig. 1);
the key features for object discovery follow Siméoni et al. 2021/2023 (LOST, FOUND).
"""

from __future__ import annotations

import numpy as np
import torch
from lcd_core import InputError

from .checkpoint import unwrap


@torch.no_grad()
def attention_and_keys(
    model: torch.nn.Module, images: torch.Tensor
) -> dict[str, torch.Tensor | tuple[int, int]]:
    """Run the ViT once and return its last-block CLS attention, keys and final patch tokens.

    Parameters
    ----------
    model
        A timm VisionTransformer with a class token (any image size when built with
        ``dynamic_img_size=True``).
    images
        (B, C, H, W) model input (:func:`lcd_embed.model_input`), on the model's device.

    Returns
    -------
    dict
        ``cls_attention`` (B, heads, N_patches) float32: softmax over all tokens of the CLS query
        in the last block, patch part; ``cls_attention_prefix`` (B, heads, n_prefix): the CLS→CLS
        (and register) part, so ``cls_attention.sum(-1) + cls_attention_prefix.sum(-1) == 1``;
        ``keys`` (B, heads, N_patches, head_dim): last-block keys of the patch tokens (after
        ``k_norm``); ``queries_cls`` (B, heads, head_dim); ``patch_tokens`` (B, N_patches, dim):
        final normed patch features; ``cls_token`` (B, dim): final normed CLS; ``grid`` (h, w):
        patch grid, N_patches = h * w, row-major.
    """
    vit = unwrap(model)
    if getattr(vit, "cls_token", None) is None:
        raise InputError("attention_and_keys needs a ViT with a class token")
    attn = vit.blocks[-1].attn
    captured: dict[str, torch.Tensor] = {}

    def hook(_module, _inputs, output):
        captured["qkv"] = output

    handle = attn.qkv.register_forward_hook(hook)
    try:
        tokens = vit.forward_features(images)
    finally:
        handle.remove()
    qkv = captured["qkv"].float()
    b, n, _ = qkv.shape
    heads, head_dim = attn.num_heads, attn.head_dim
    qkv = qkv.reshape(b, n, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    n_prefix = vit.num_prefix_tokens
    q_cls = q[:, :, 0]  # (B, heads, head_dim)
    logits = torch.einsum("bhd,bhnd->bhn", q_cls, k) * attn.scale
    probs = logits.softmax(dim=-1)
    grid = _grid(vit, images.shape[-2:])
    tokens = tokens.float()
    return {
        "cls_attention": probs[:, :, n_prefix:],
        "cls_attention_prefix": probs[:, :, :n_prefix],
        "keys": k[:, :, n_prefix:],
        "queries_cls": q_cls,
        "patch_tokens": tokens[:, n_prefix:],
        "cls_token": tokens[:, 0],
        "grid": grid,
    }


def _grid(vit, hw) -> tuple[int, int]:
    pe = vit.patch_embed
    if hasattr(pe, "dynamic_feat_size"):
        h, w = pe.dynamic_feat_size(tuple(int(v) for v in hw))
    else:
        h, w = (int(s) // int(p) for s, p in zip(hw, pe.patch_size, strict=True))
    return int(h), int(w)


def tile_attention(model: torch.nn.Module, tiles: torch.Tensor, *, batch_size: int = 64) -> np.ndarray:
    """CLS->patch attention of each tile on its patch grid: (T, heads, gh, gw) float32 numpy.

    Parameters
    ----------
    model
        A timm VisionTransformer with a class token.
    tiles
        (T, C, t, t) model input on the model's device.
    batch_size
        Tiles per forward pass.
    """
    out = []
    for start in range(0, len(tiles), batch_size):
        res = attention_and_keys(model, tiles[start : start + batch_size])
        gh, gw = res["grid"]
        att = res["cls_attention"]
        out.append(att.reshape(att.shape[0], att.shape[1], gh, gw).cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def stitch_tiles(
    values: np.ndarray, coords: np.ndarray, field_shape: tuple[int, int], *, tile_size: int
) -> np.ndarray:
    """Place per-tile maps (T, K, gh, gw) back into a field (K, H, W), nearest upsampling, mean over overlaps.

    Parameters
    ----------
    values
        (T, K, gh, gw) per-tile maps on each tile's patch grid.
    coords
        (T, 2) top-left (y, x) of each tile in field pixels (:func:`lcd_embed.model_input`'s).
    field_shape
        (H, W) of the field.
    tile_size
        Side of a tile in field pixels (``tile_size * downscale`` of the recipe).

    Returns
    -------
    numpy.ndarray
        float32 (K, H, W); pixels no tile covers are NaN.
    """
    _, k, gh, gw = values.shape
    h, w = field_shape
    acc = np.zeros((k, h, w), np.float64)
    cnt = np.zeros((h, w), np.int32)
    yi = np.minimum(np.arange(tile_size) * gh // tile_size, gh - 1)
    xi = np.minimum(np.arange(tile_size) * gw // tile_size, gw - 1)
    for v, (y, x) in zip(values, coords, strict=True):
        up = v[:, yi][:, :, xi]
        hh, ww = min(tile_size, h - y), min(tile_size, w - x)
        acc[:, y : y + hh, x : x + ww] += up[:, :hh, :ww]
        cnt[y : y + hh, x : x + ww] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        out = acc / cnt
    return out.astype(np.float32)
