"""lcd_nuclei.cell_area: the cell area of transparent cells from the defocus contrast of a z-stack.

Oracle: fields rendered by the linearised transport-of-intensity equation (the convention of
lcd_nuclei.tie, I(z) = I0 (1 - z lap(phi) / k)) from phase domes on discs whose union is the true
cell mask; the in-focus plane shows only the lamp and noise.
"""

import numpy as np
import pandas as pd
import pytest
import tifffile
from lcd_core import InputError
from lcd_nuclei import cell_area, count_nuclei
from scipy import ndimage as ndi

K = 2 * np.pi / 0.55


def cells_field(discs, shape=(160, 160), seed=0, noise=5.0, lamp=1000.0, amp=5.0):
    """Three planes (z = -1, 0, 1) of textured transparent cells on the given discs, and the true mask.

    At amp 5 the local SD of the defocus contrast inside a cell is 9-23 noise SDs (10th-90th
    percentile); at amp 2 it is 4-10 and most of a cell falls under the default floor of 8.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    mask = np.zeros(shape, bool)
    for cy, cx, r in discs:
        mask |= (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    # a cell: a smooth dome plus fine granular texture (organelles), zero outside the cell
    texture = ndi.gaussian_filter(rng.standard_normal(shape), 1.0)
    phi = amp * (ndi.gaussian_filter(mask.astype(float), 2.0) + 0.5 * texture * mask)
    i0 = lamp * (1 + 0.2 * xx / shape[1])  # a lamp gradient the method must ignore
    planes = np.stack([i0 * (1 - z * ndi.laplace(phi) / K) for z in (-1.0, 0.0, 1.0)])
    return planes + rng.normal(scale=noise * lamp / 1000.0, size=planes.shape), mask


DISCS = [(40, 40, 22), (40, 115, 18), (110, 60, 26), (120, 125, 15)]


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_the_cell_area_matches_the_rendered_cells():
    planes, truth = cells_field(DISCS)
    mask = cell_area(planes)
    assert mask.shape == truth.shape and mask.dtype == bool
    assert iou(mask, truth) > 0.8
    assert abs(mask.mean() - truth.mean()) < 0.05


def test_confluency_follows_the_number_of_cells_and_an_empty_field_stays_empty():
    true, measured = [], []
    for k in range(len(DISCS) + 1):
        planes, truth = cells_field(DISCS[:k], seed=k)
        true.append(truth.mean())
        measured.append(cell_area(planes).mean())
    assert measured[0] < 0.005  # noise alone: nothing
    assert np.all(np.diff(measured) > 0)
    np.testing.assert_allclose(measured, true, atol=0.05)


@pytest.mark.parametrize("lamp", [200.0, 1000.0, 20000.0])
def test_the_threshold_does_not_move_with_the_lamp(lamp):
    """Defocus contrast is divided by the in-focus intensity and the floor is in noise SDs."""
    planes, truth = cells_field(DISCS, lamp=lamp)
    assert iou(cell_area(planes), truth) > 0.8


def test_the_in_focus_plane_alone_is_refused():
    planes, _ = cells_field(DISCS)
    with pytest.raises(InputError, match="at least 2 planes"):
        cell_area(planes[1])
    with pytest.raises(InputError, match="at least 2 planes"):
        cell_area(planes[1:2])
    with pytest.raises(InputError, match="window"):
        cell_area(planes, window=0)
    with pytest.raises(InputError, match="floor"):
        cell_area(planes, floor=-1)


def test_count_without_a_model_measures_confluency_only_when_every_field_has_planes(tmp_path):
    rows = []
    for i, discs in enumerate((DISCS[:1], DISCS)):
        planes, _ = cells_field(discs, seed=i)
        tifffile.imwrite(tmp_path / f"z{i}.tif", planes.astype(np.float32), photometric="minisblack")
        tifffile.imwrite(tmp_path / f"flat{i}.tif", planes[1].astype(np.float32))
        rows.append({"well": f"A0{i + 1}", "fov": 1, "path": f"z{i}.tif"})
    pd.DataFrame(rows).to_csv(tmp_path / "z.csv", index=False)
    adata = count_nuclei(tmp_path / "z.csv", calibration=None, progress=False)
    truth = [cells_field(d, seed=i)[1].mean() for i, d in enumerate((DISCS[:1], DISCS))]
    np.testing.assert_allclose(adata.obs["confluency"].to_numpy(), truth, atol=0.05)
    # one plane per field: no confluency column, and the model name says why
    flat = pd.DataFrame([{**r, "path": f"flat{i}.tif"} for i, r in enumerate(rows)])
    flat.to_csv(tmp_path / "flat.csv", index=False)
    single = count_nuclei(tmp_path / "flat.csv", calibration=None, progress=False)
    assert "confluency" not in single.obs and list(single.var_names) == ["nuclei_count"]
    assert "1 plane" in single.uns["lcd_nuclei"]["model"]["name"]
    # a manifest mixing the two is refused, naming rows
    pd.DataFrame([rows[0], {**rows[1], "path": "flat1.tif"}]).to_csv(tmp_path / "mixed.csv", index=False)
    with pytest.raises(InputError, match="row 1 has one plane and row 0"):
        count_nuclei(tmp_path / "mixed.csv", calibration=None, progress=False)
