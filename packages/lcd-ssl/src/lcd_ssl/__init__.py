"""lcd-ssl: self-supervised ViT training for brightfield (DINO + Barlow Twins, cross-batch, plane-agnostic).

Public API: :class:`TrainConfig`, :func:`train`, :func:`export_backbone`, :class:`InMemoryImages`;
building blocks for reuse and testing: :class:`MultiCropLoss`, :func:`barlow_term`,
:func:`dino_cross_entropy`, :class:`ReplicaCenters`, :class:`DINOHead`, :func:`build_partner_index`,
:class:`CrossBatchSampler`. The error types are :class:`lcd_core.InputError` subclasses
(``ConfigError`` of :class:`lcd_core.ConfigError`).

Names are loaded lazily, so ``import lcd_ssl.cli`` (mounted by ``lcd``) does not import torch.
"""

from __future__ import annotations

from lcd_core import lazy_exports

__version__ = "0.3.0"

_EXPORTS = {
    "VARIANTS": "config",
    "ConfigError": "config",
    "TrainConfig": "config",
    "CrossBatchSampler": "sampler",
    "PlanError": "sampler",
    "DINOHead": "heads",
    "MultiCropModel": "heads",
    "DataError": "data",
    "InMemoryImages": "data",
    "MetadataError": "pairing",
    "PartnerIndex": "pairing",
    "build_partner_index": "pairing",
    "MultiCropLoss": "losses",
    "barlow_term": "losses",
    "dino_cross_entropy": "losses",
    "ReplicaCenters": "centers",
    "NonFiniteLossError": "trainer",
    "train": "trainer",
    "export_backbone": "export",
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, _EXPORTS, globals())
