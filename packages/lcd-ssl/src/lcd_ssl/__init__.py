"""lcd-ssl: self-supervised ViT training for brightfield (DINO + Barlow Twins, cross-batch, plane-agnostic).

Public API: :class:`TrainConfig`, :func:`train`, :func:`export_backbone`, :class:`InMemoryImages`;
building blocks for reuse and testing: :class:`MultiCropLoss`, :func:`barlow_term`,
:func:`dino_cross_entropy`, :class:`ReplicaCenters`, :class:`DINOHead`, :func:`build_partner_index`,
:class:`CrossBatchSampler`.
"""

from .centers import ReplicaCenters
from .config import VARIANTS, ConfigError, TrainConfig
from .data import DataError, InMemoryImages
from .export import export_backbone
from .heads import DINOHead, MultiCropModel
from .losses import MultiCropLoss, barlow_term, dino_cross_entropy
from .pairing import MetadataError, PartnerIndex, build_partner_index
from .sampler import CrossBatchSampler
from .trainer import NonFiniteLossError, train

__version__ = "0.1.0"

__all__ = [
    "VARIANTS",
    "ConfigError",
    "CrossBatchSampler",
    "DINOHead",
    "DataError",
    "InMemoryImages",
    "MetadataError",
    "MultiCropLoss",
    "MultiCropModel",
    "NonFiniteLossError",
    "PartnerIndex",
    "ReplicaCenters",
    "TrainConfig",
    "barlow_term",
    "build_partner_index",
    "dino_cross_entropy",
    "export_backbone",
    "train",
]
