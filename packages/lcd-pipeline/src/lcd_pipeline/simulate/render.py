"""Pure numpy kernels that turn cell parameters into brightfield z-stacks (no I/O, no pandas).

Image model (a weak-phase-object approximation of transmitted light, cf. the transport-of-intensity
equation, Teague 1983): cells are phase objects of thickness ``φ`` (a dome per cell, a thicker bump at
the nucleus, granular texture) that also absorb a little (nuclei more). A plane at defocus ``δ``
records

    I_δ = illum · gain · (1 − A_blur + κ · δ · ∇²(G_σ(δ) ∗ φ)) + offset + noise

so the in-focus plane shows mostly absorption (darker nuclei, faint cells), and the planes above and
below show the cell outlines with bright/dark halos of opposite sign and more blur the further they
are from focus. Blur and Laplacian are applied together in Fourier space, for a whole batch of fields
at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HALO_GAIN = 6.0  # κ: contrast of the defocus (phase) term
INTENSITY_SCALE = 20000.0  # background grey value of the uint16 output (Opera images are 16-bit)


@dataclass
class Cells:
    """Cells of a batch of fields, one entry per cell (flat over fields)."""

    field: np.ndarray  # int, index of the field in the batch
    y: np.ndarray  # centre (pixels, sub-pixel)
    x: np.ndarray
    semi_major: np.ndarray  # cell semi-axes (pixels)
    semi_minor: np.ndarray
    angle: np.ndarray  # orientation (radians)
    thickness: np.ndarray  # phase amplitude of the cell dome
    texture: np.ndarray  # amplitude of granular texture
    nucleus_radius: np.ndarray  # nucleus radius (pixels, round)
    nucleus_absorption: np.ndarray  # darkness of the nucleus in the in-focus plane


def hex_lattice(size: int, spacing: float) -> np.ndarray:
    """Points of a hexagonal lattice covering ``[-spacing, size + spacing)²`` (shape (n, 2), y then x)."""
    dy = spacing * np.sqrt(3) / 2
    rows = np.arange(-1, int(np.ceil(size / dy)) + 2)
    cols = np.arange(-1, int(np.ceil(size / spacing)) + 2)
    ii, jj = np.meshgrid(rows, cols, indexing="ij")
    y = ii * dy
    x = (jj + 0.5 * (ii % 2)) * spacing
    return np.stack([y.ravel(), x.ravel()], axis=1)


def sample_cells(
    rng: np.random.Generator,
    *,
    size: int,
    cell_radius: float,
    keep_probability: float,
    effects: np.ndarray,
) -> dict[str, np.ndarray]:
    """Draw the cells of one field.

    Cells sit on a randomly shifted, jittered hexagonal lattice, so nuclei never touch (their count is
    exact ground truth) while the arrangement still looks irregular. ``effects`` is the phenotype
    vector (size, rounding, count loss, texture, nuclear contrast) already scaled by the strength.
    Only cells whose centre lies inside the field are kept (and counted).
    """
    e_size, e_round, e_count, e_tex, e_nuc = (float(v) for v in effects)
    spacing = 2.4 * cell_radius
    pts = hex_lattice(size, spacing) + rng.uniform(0, spacing, size=2)
    jitter = 0.12 * spacing
    pts = pts + rng.uniform(-jitter, jitter, size=pts.shape)
    keep = keep_probability * (1.0 - 0.7 * np.clip(e_count, 0, 1))
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < size) & (pts[:, 1] >= 0) & (pts[:, 1] < size)
    alive = rng.random(len(pts)) < keep
    pts = pts[inside & alive]
    n = len(pts)
    radius = cell_radius * np.clip(1.0 + 0.35 * e_size, 0.6, 1.6) * rng.uniform(0.85, 1.15, n)
    elongation = rng.uniform(1.2, 2.0, n)
    # rounding pulls every cell towards a circle; negative rounding (spreading) elongates
    aspect = np.clip(1.0 + (elongation - 1.0) * (1.0 - 0.9 * np.clip(e_round, -1, 1)), 1.0, 2.6)
    min_gap = spacing - 2 * np.sqrt(2) * jitter  # smallest possible distance between two centres
    nucleus = np.minimum(
        0.45 * cell_radius * (1.0 + 0.25 * e_nuc) * rng.uniform(0.9, 1.1, n), min_gap / 2 - 1.0
    )
    return {
        "y": pts[:, 0],
        "x": pts[:, 1],
        "semi_major": radius * np.sqrt(aspect),
        "semi_minor": radius / np.sqrt(aspect),
        "angle": rng.uniform(0, np.pi, n),
        "thickness": (1.0 + 0.6 * np.clip(e_round, 0, 1)) * rng.uniform(0.8, 1.2, n),
        "texture": np.clip(0.12 * (1.0 + 2.5 * e_tex), 0.0, None) * np.ones(n),
        "nucleus_radius": np.maximum(nucleus, 1.5),
        "nucleus_absorption": np.clip(0.10 * (1.0 + 1.5 * e_nuc), 0.02, None) * rng.uniform(0.85, 1.15, n),
    }


def stamp(cells: Cells, n_fields: int, size: int) -> dict[str, np.ndarray]:
    """Rasterize all cells of a batch at once; returns (n_fields, size, size) float32 maps.

    ``phase`` (cell domes + nuclear bumps), ``textured`` (phase weight of the texture), ``absorption``,
    ``stain`` (nuclear stain intensity, for the ground-truth reference channel), ``cell_mask`` and
    ``nucleus_mask`` (coverage counts).
    """
    shape = (n_fields, size, size)
    out = {k: np.zeros(shape, np.float32) for k in ("phase", "textured", "absorption", "stain", "cell_mask")}
    out["nucleus_mask"] = np.zeros(shape, np.float32)
    if len(cells.field) == 0:
        return out
    half = int(np.ceil(cells.semi_major.max())) + 1
    offs = np.arange(-half, half + 1)
    cy, cx = np.floor(cells.y).astype(int), np.floor(cells.x).astype(int)
    py = cy[:, None, None] + offs[None, :, None]  # (n, P, 1) pixel rows
    px = cx[:, None, None] + offs[None, None, :]  # (n, 1, P)
    dy = py + 0.5 - cells.y[:, None, None]
    dx = px + 0.5 - cells.x[:, None, None]
    c, s = np.cos(cells.angle)[:, None, None], np.sin(cells.angle)[:, None, None]
    u, v = dx * c + dy * s, -dx * s + dy * c
    rho2 = (u / cells.semi_major[:, None, None]) ** 2 + (v / cells.semi_minor[:, None, None]) ** 2
    rn2 = (dy**2 + dx**2) / cells.nucleus_radius[:, None, None] ** 2
    dome = np.sqrt(np.clip(1.0 - rho2, 0.0, None))
    nuc = np.sqrt(np.clip(1.0 - rn2, 0.0, None))
    cell_in = (rho2 < 1.0).astype(np.float32)
    nuc_in = (rn2 < 1.0).astype(np.float32)
    th = cells.thickness[:, None, None]
    values = {
        "phase": th * dome + 0.8 * th * nuc,
        "textured": th * dome * cells.texture[:, None, None],
        "absorption": 0.02 * cell_in + cells.nucleus_absorption[:, None, None] * nuc,
        "stain": nuc,
        "cell_mask": cell_in,
        "nucleus_mask": nuc_in,
    }
    pyb, pxb = np.broadcast_to(py, dome.shape), np.broadcast_to(px, dome.shape)
    valid = (pyb >= 0) & (pyb < size) & (pxb >= 0) & (pxb < size)
    flat = (np.broadcast_to(cells.field[:, None, None], dome.shape) * size + pyb) * size + pxb
    idx = flat[valid]
    for k, val in values.items():
        out[k] = np.bincount(
            idx, weights=np.broadcast_to(val, dome.shape)[valid], minlength=n_fields * size * size
        )
        out[k] = out[k].reshape(shape).astype(np.float32)
    return out


def _freq2(size: int) -> np.ndarray:
    f = np.fft.fftfreq(size) * 2 * np.pi
    fr = np.fft.rfftfreq(size) * 2 * np.pi
    return (f[:, None] ** 2 + fr[None, :] ** 2).astype(np.float32)


def smooth_noise(rng_noise: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise (batch, H, W), rescaled to unit SD per field."""
    size = rng_noise.shape[-1]
    k2 = _freq2(size)
    out = np.fft.irfft2(np.fft.rfft2(rng_noise) * np.exp(-k2 * sigma**2 / 2), s=rng_noise.shape[-2:])
    out /= out.std(axis=(-2, -1), keepdims=True) + 1e-12
    return out.astype(np.float32)


def brightfield_planes(
    phase: np.ndarray,
    absorption: np.ndarray,
    defocus: np.ndarray,
    illumination: np.ndarray,
    gain: np.ndarray,
    offset: np.ndarray,
    noise: np.ndarray,
) -> np.ndarray:
    """Image formation for a batch: (F, H, W) phase/absorption, (F, Z) defocus → (F, Z, H, W) float32.

    ``illumination`` (F, H, W) multiplies, ``gain``/``offset`` (F,) are per field, ``noise`` is the
    pre-drawn pixel noise (F, Z, H, W) (already scaled). Blur σ grows with |defocus|.
    """
    size = phase.shape[-1]
    k2 = _freq2(size)
    ph = np.fft.rfft2(phase)
    ab = np.fft.rfft2(absorption)
    planes = np.empty((*defocus.shape, size, size), np.float32)
    for z in range(defocus.shape[1]):
        d = defocus[:, z].astype(np.float32)[:, None, None]
        sigma = 0.7 + 1.4 * np.abs(d)
        blur = np.exp(-k2[None] * sigma**2 / 2)
        lap = np.fft.irfft2(-k2[None] * blur * ph, s=(size, size))
        ab_blur = np.fft.irfft2(np.exp(-k2[None] * (0.6 + 0.8 * np.abs(d)) ** 2 / 2) * ab, s=(size, size))
        contrast = 1.0 - ab_blur + HALO_GAIN * d * lap
        planes[:, z] = illumination * gain[:, None, None] * contrast + offset[:, None, None] + noise[:, z]
    return planes


def to_uint16(img: np.ndarray) -> np.ndarray:
    """Scale relative intensities (background ≈ 1) to 16-bit grey values, clipped."""
    return np.clip(np.rint(img * INTENSITY_SCALE), 0, 65535).astype(np.uint16)


def illumination_field(size: int, grad_y: np.ndarray, grad_x: np.ndarray) -> np.ndarray:
    """Linear illumination gradients times a mild vignetting, (F, H, W)."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    yy, xx = c[:, None], c[None, :]
    vignette = 1.0 - 0.15 * (yy**2 + xx**2)
    return (1.0 + grad_y[:, None, None] * yy + grad_x[:, None, None] * xx) * vignette
