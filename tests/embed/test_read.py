"""Image reading: dtypes, formats, plane selection, real pixels from ../shared/data/images, bad files."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from lcd_embed import ImageReadError, read_field
from PIL import Image


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_tiff_dtypes_and_multipage(tmp_path, rng, dtype):
    stack = (rng.random((3, 20, 30)) * 1000).astype(dtype)
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack, photometric="minisblack")  # 3 pages
    out = read_field(path)
    assert out.dtype == np.float32 and out.shape == (3, 20, 30)
    np.testing.assert_array_equal(out, stack.astype(np.float32))
    np.testing.assert_array_equal(read_field(str(path), planes=[2, 0]), stack[[2, 0]].astype(np.float32))
    with pytest.raises(ImageReadError, match="plane 3 requested"):
        read_field(path, planes=[3])


def test_png_per_plane_files(tmp_path, rng):
    planes = [rng.integers(0, 65535, (16, 12), dtype=np.uint16) for _ in range(3)]
    paths = []
    for i, p in enumerate(planes):
        paths.append(tmp_path / f"z{i}.png")
        Image.fromarray(p).save(paths[-1])
    out = read_field(paths)
    np.testing.assert_array_equal(out, np.stack(planes).astype(np.float32))
    np.testing.assert_array_equal(read_field(paths, planes=[1]), planes[1][None].astype(np.float32))
    # a manifest row with path_z* columns
    row = {"well": "A01", **{f"path_z{i}": str(p) for i, p in enumerate(paths)}}
    np.testing.assert_array_equal(
        read_field(row, planes=[0, 2]), np.stack([planes[0], planes[2]]).astype(np.float32)
    )
    # RGB -> grey (mean of channels)
    rgb = rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_allclose(
        read_field(tmp_path / "rgb.png")[0], rgb.astype(np.float32).mean(-1), rtol=1e-6
    )


def test_real_phase_zstack_and_dsb(shared_data):
    isl = shared_data / "images" / "isl_phase_zstack_dapi"
    paths = [isl / f"phase_z{z:02d}.png" for z in (4, 6, 8)]
    field = read_field(paths)
    assert field.shape == (3, 1024, 1024) and field.dtype == np.float32
    for i, p in enumerate(paths):  # oracle: Pillow read directly, 16-bit
        with Image.open(p) as im:
            np.testing.assert_array_equal(field[i], np.asarray(im).astype(np.float32))
    assert not np.array_equal(field[0], field[2])  # distinct focal planes
    dsb = sorted((shared_data / "images" / "dsb2018_brightfield").glob("*_image.tif"))
    assert len(dsb) == 8
    for p in dsb[:3]:
        img = read_field(p)
        np.testing.assert_array_equal(img[0], tifffile.imread(p).astype(np.float32))


def test_missing_and_corrupt_files(tmp_path, rng):
    with pytest.raises(FileNotFoundError, match=r"nope\.tif"):
        read_field(tmp_path / "nope.tif")
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage" * 3)
    with pytest.raises(ImageReadError, match=r"broken\.tif"):
        read_field(bad)
    png = tmp_path / "cut.png"
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:60])  # truncated
    with pytest.raises(ImageReadError, match=r"cut\.png"):
        read_field(png)
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, np.zeros((8, 8), np.uint8))
    tifffile.imwrite(b, np.zeros((8, 9), np.uint8))
    with pytest.raises(ImageReadError, match=r"b\.tif"):
        read_field([a, b])
