"""Multi-crop augmentations for grey brightfield fields, with torch tensor ops (no torchvision).

DINO's recipe (Caron et al. 2021) minus the colour operations: random resized crops, horizontal/
vertical flips and 90° rotations (microscopy has no canonical orientation), brightness/contrast
jitter, and Gaussian blur. The plane-agnostic variant (LCD) replaces blur by drawing each crop's
z-plane at random: real defocus instead of simulated blur.

Every random choice comes from a ``numpy.random.Generator`` seeded per sample, so a sample's crops
depend only on its seed (not on the worker or process that builds them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# DINO's per-crop blur probabilities: global crop 1, global crop 2, local crops
BLUR_P = (1.0, 0.1, 0.5)
BLUR_SIGMA = (0.1, 2.0)
JITTER_P = 0.8
BRIGHTNESS, CONTRAST = 0.4, 0.4
# content-aware crops: draws per crop before settling for the most varied one
MAX_CROP_DRAWS = 10
# spatial_std looks at a strided subsample of at most about this many pixels per side
STD_SAMPLE_SIDE = 64


def spatial_std(region: np.ndarray) -> float:
    """Spatial standard deviation of a (P, h, w) region, averaged over planes.

    Estimated on a regular subsample of at most about ``STD_SAMPLE_SIDE``² pixels per plane, so its
    cost does not grow with the region (a 2160² field costs the same as a 64² crop).
    """
    step = max(1, math.ceil(max(region.shape[-2:]) / STD_SAMPLE_SIDE))
    return float(np.asarray(region[:, ::step, ::step], dtype=np.float32).std(axis=(-2, -1)).mean())


def random_window(rng: np.random.Generator, h: int, w: int, size: int | None) -> tuple[int, int, int, int]:
    """A uniformly placed square window (top, left, height, width), clipped to the field."""
    if size is None:
        return 0, 0, h, w
    wh, ww = min(size, h), min(size, w)
    top = int(rng.integers(0, h - wh + 1))
    left = int(rng.integers(0, w - ww + 1))
    return top, left, wh, ww


def random_resized_box(
    rng: np.random.Generator,
    h: int,
    w: int,
    scale: tuple[float, float],
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
) -> tuple[int, int, int, int]:
    """A crop box covering a random area fraction ``scale`` and aspect ratio ``ratio`` (log-uniform).

    The sampling scheme of Szegedy et al. 2015 / torchvision's RandomResizedCrop: up to 10 draws,
    then a central crop with the ratio clamped.
    """
    area = h * w
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        cw = round(math.sqrt(target * aspect))
        ch = round(math.sqrt(target / aspect))
        if 0 < cw <= w and 0 < ch <= h:
            top = int(rng.integers(0, h - ch + 1))
            left = int(rng.integers(0, w - cw + 1))
            return top, left, ch, cw
    in_ratio = w / h
    if in_ratio < ratio[0]:
        cw, ch = w, round(w / ratio[0])
    elif in_ratio > ratio[1]:
        ch, cw = h, round(h * ratio[1])
    else:
        cw, ch = w, h
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def resize(img: torch.Tensor, size: int) -> torch.Tensor:
    """(C, h, w) -> (C, size, size), bilinear with antialiasing when shrinking."""
    if img.shape[-2:] == (size, size):
        return img
    return F.interpolate(img[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[
        0
    ]


def flip_rotate(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random horizontal and vertical flips and a random multiple of 90° rotation.

    Parameters
    ----------
    img
        (C, h, w) crop.
    rng
        The sample's generator.
    """
    if rng.random() < 0.5:
        img = img.flip(-1)
    if rng.random() < 0.5:
        img = img.flip(-2)
    k = int(rng.integers(0, 4))
    return torch.rot90(img, k, dims=(-2, -1)) if k else img


def brightness_contrast(img: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """With probability 0.8: scale intensities (brightness), then stretch around the crop mean (contrast)."""
    if rng.random() >= JITTER_P:
        return img
    b = rng.uniform(1 - BRIGHTNESS, 1 + BRIGHTNESS)
    c = rng.uniform(1 - CONTRAST, 1 + CONTRAST)
    img = img * b
    mean = img.mean()
    return (img - mean) * c + mean


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding (kernel radius ceil(3 sigma))."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=img.dtype)
    k = torch.exp(-(x**2) / (2 * sigma * sigma))
    k = k / k.sum()
    c = img.shape[0]
    radius = min(radius, img.shape[-1] - 1, img.shape[-2] - 1)
    if radius < 1:
        return img
    k = k[len(k) // 2 - radius : len(k) // 2 + radius + 1]
    k = k / k.sum()
    out = F.pad(img[None], (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    out = F.conv2d(out, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)
    return out[0]


@dataclass(frozen=True)
class MultiCrop:
    """Builds the crops of one sample: ``[global_anchor, global_partner, locals_anchor..., locals_partner...]``.

    Parameters
    ----------
    global_size, local_size
        Output sides in pixels.
    global_scale, local_scale
        Area fractions of the sampling window.
    n_local
        Local crops in total (half from each image; all from the anchor when ``n_local`` is odd and
        the partner is the anchor itself).
    window_size
        Side of the random window cut from each field first (``None``: whole field).
    in_chans
        Model input channels.
    plane_agnostic
        Each crop takes one random plane of the field (repeated to ``in_chans``). Otherwise the
        field's planes are the channels (one plane is repeated).
    blur
        DINO's Gaussian blur; ``None``: blur unless ``plane_agnostic`` (the LCD recipe). With
        ``blur=False`` on non-plane-agnostic crops the blur's random numbers are still drawn, so the
        crops are those of the blurred run without the blur (an ablation that changes one thing).
    min_std_fraction
        Content-aware crops: a crop region's spatial std (:func:`spatial_std`) must reach this
        fraction of its whole field's, else the box is redrawn (bounded, see
        :meth:`content_region`). 0 disables the check.
    """

    global_size: int
    local_size: int
    global_scale: tuple[float, float]
    local_scale: tuple[float, float]
    n_local: int
    window_size: int | None
    in_chans: int
    plane_agnostic: bool
    min_std_fraction: float = 0.0
    blur: bool | None = None

    @property
    def use_blur(self) -> bool:
        """Whether crops are blurred (``blur``, or by default: unless plane-agnostic)."""
        return (not self.plane_agnostic) if self.blur is None else bool(self.blur)

    def crop(
        self,
        field: np.ndarray,
        rng: np.random.Generator,
        *,
        size: int,
        scale,
        blur_p: float,
        min_std: float = 0.0,
    ) -> torch.Tensor:
        """One augmented crop of ``field``: content-aware box, resize, flips/rotation, jitter, blur.

        Parameters
        ----------
        field
            (P, H, W) normalized field.
        rng
            The sample's generator.
        size
            Output side.
        scale
            Area fractions of the sampling window.
        blur_p
            Probability of Gaussian blur (when blur is on, see ``blur``).
        min_std
            Spatial std the crop region should reach (see :meth:`content_region`).
        """
        region = self.content_region(field, rng, scale=scale, min_std=min_std)
        img = resize(torch.from_numpy(np.ascontiguousarray(region, dtype=np.float32)), size)
        if img.shape[0] != self.in_chans:
            img = img.expand(self.in_chans, -1, -1)
        img = flip_rotate(img, rng)
        img = brightness_contrast(img, rng)
        if self.use_blur:
            if rng.random() < blur_p:
                img = gaussian_blur(img, float(rng.uniform(*BLUR_SIGMA)))
        elif not self.plane_agnostic and rng.random() < blur_p:
            rng.uniform(*BLUR_SIGMA)  # blur removed: keep the random stream of the blurred run
        return img.contiguous()

    def draw_region(self, field: np.ndarray, rng: np.random.Generator, *, scale) -> np.ndarray:
        """One random window, resized-crop box and (plane-agnostic) plane: a view of ``field``."""
        _, h, w = field.shape
        wt, wl, wh, ww = random_window(rng, h, w, self.window_size)
        top, left, ch, cw = random_resized_box(rng, wh, ww, scale)
        if self.plane_agnostic:
            p = int(rng.integers(0, field.shape[0]))
            return field[p : p + 1, wt + top : wt + top + ch, wl + left : wl + left + cw]
        return field[:, wt + top : wt + top + ch, wl + left : wl + left + cw]

    def content_region(
        self, field: np.ndarray, rng: np.random.Generator, *, scale, min_std: float
    ) -> np.ndarray:
        """A crop region whose spatial std reaches ``min_std`` (content-aware crop).

        Sparse microscopy fields are mostly flat background; crops of it carry no signal, and two
        such views can only agree on their brightness. Boxes are redrawn (at most
        :data:`MAX_CROP_DRAWS` draws, all from the sample's generator, so still deterministic) until one
        varies enough; if none does, the most varied draw is used. ``min_std <= 0``: the first draw,
        exactly as without the check.
        """
        region = self.draw_region(field, rng, scale=scale)
        if min_std <= 0:
            return region
        best, best_std = region, spatial_std(region)
        for _ in range(MAX_CROP_DRAWS - 1):
            if best_std >= min_std:
                break
            region = self.draw_region(field, rng, scale=scale)
            std = spatial_std(region)
            if std > best_std:
                best, best_std = region, std
        return best

    def __call__(self, anchor: np.ndarray, partner: np.ndarray, seed: int) -> list[torch.Tensor]:
        """The crops of one sample (global anchor, global partner, local crops), from its seed."""
        rng = np.random.default_rng(seed)
        f = self.min_std_fraction
        a_min = f * spatial_std(anchor) if f > 0 else 0.0
        p_min = a_min if partner is anchor else (f * spatial_std(partner) if f > 0 else 0.0)
        g, loc = (
            dict(size=self.global_size, scale=self.global_scale),
            dict(size=self.local_size, scale=self.local_scale),
        )
        crops = [
            self.crop(anchor, rng, **g, blur_p=BLUR_P[0], min_std=a_min),
            self.crop(partner, rng, **g, blur_p=BLUR_P[1], min_std=p_min),
        ]
        n_anchor = self.n_local - self.n_local // 2
        for i in range(self.n_local):
            src, m = (anchor, a_min) if i < n_anchor else (partner, p_min)
            crops.append(self.crop(src, rng, **loc, blur_p=BLUR_P[2], min_std=m))
        return crops
