"""lcd-ssl: self-supervised ViT training for brightfield (DINO + Barlow Twins, cross-batch, plane-agnostic).

Public API: :class:`TrainConfig`, :func:`train`, :func:`export_backbone`, :class:`InMemoryImages`;
building blocks for reuse and testing: :class:`MultiCropLoss`, :func:`barlow_term`,
:func:`dino_cross_entropy`, :class:`ReplicaCenters`, :class:`DINOHead`, :func:`build_partner_index`,
:class:`CrossBatchSampler`.

Names are loaded lazily, so ``import lcd_ssl.cli`` (mounted by ``lcd``) does not import torch.
"""

from __future__ import annotations

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "VARIANTS": "config",
    "ConfigError": "config",
    "TrainConfig": "config",
    "CrossBatchSampler": "sampler",
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

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lcd_ssl' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
