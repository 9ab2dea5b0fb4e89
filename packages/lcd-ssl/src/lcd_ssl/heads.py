"""The DINO projection head and the multi-crop wrapper (backbone + head over crops of two sizes).

Architecture from Caron et al. 2021, "Emerging Properties in Self-Supervised Vision Transformers"
(DINO): a 3-layer MLP (GELU) to a bottleneck, L2 normalization, then a bias-free linear layer whose
rows are kept at unit norm (weight normalization with the gain fixed to 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DINOHead(nn.Module):
    """MLP head: ``in_dim -> hidden -> hidden -> bottleneck -> L2-normalize -> out_dim``.

    Parameters
    ----------
    in_dim
        Backbone feature size (CLS token).
    out_dim
        Number of prototypes (softmax dimensions of the DINO loss).
    hidden_dim, bottleneck_dim
        MLP sizes (DINO: 2048, 256).
    """

    def __init__(self, in_dim: int, out_dim: int, *, hidden_dim: int = 2048, bottleneck_dim: int = 256):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, bottleneck_dim),
        )
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        # Direction-only last layer: the effective weight is this matrix with unit-norm rows
        # (weight_norm with g = 1, DINO's norm_last_layer=True). Stored plainly so state dicts stay simple.
        self.last_layer = nn.Parameter(torch.empty(out_dim, bottleneck_dim))
        nn.init.trunc_normal_(self.last_layer, std=0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Prototype logits of backbone features ``x`` (B, in_dim) -> (B, out_dim)."""
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return F.linear(x, F.normalize(self.last_layer, dim=1, p=2))


class MultiCropModel(nn.Module):
    """Backbone + head applied to a list of crops, batching consecutive crops of equal size together.

    ``forward(crops)`` takes a list of (B, C, h, w) tensors and returns (len(crops) * B, out_dim),
    crop-major (all rows of crop 0, then crop 1, ...). One call per step keeps DDP's gradient hooks to
    a single forward.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
        """Head outputs of every crop, crop-major (see the class docstring)."""
        outputs = []
        start = 0
        while start < len(crops):
            end = start + 1
            while end < len(crops) and crops[end].shape[-2:] == crops[start].shape[-2:]:
                end += 1
            feats = self.backbone(torch.cat(crops[start:end]))
            outputs.append(feats)
            start = end
        return self.head(torch.cat(outputs))
