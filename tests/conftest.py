"""Shared fixtures. Stdlib + pytest only: this file is loaded by every package's isolated test run."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the repository (`../shared/data`); fails loudly when missing."""
    if not (SHARED_DATA / "README.md").is_file():
        pytest.fail(
            f"real test data not found at {SHARED_DATA}: clone the repository next to the shared/ folder "
            "(../shared/data) to run these tests",
            pytrace=False,
        )
    return SHARED_DATA


HARMONY_NS = "http://www.perkinelmer.com/PEHH/HarmonyV5"


def _write_harmony_export(
    folder: Path, barcode: str, start: str, images: list[dict], *, index: bool = True
) -> Path:
    """One Harmony export: TIFFs named like Harmony's and (optionally) its Index.idx.xml."""
    import numpy as np
    import tifffile

    img_dir = folder / "Images"
    img_dir.mkdir(parents=True)
    entries = []
    for im in images:
        name = (
            f"r{im['row']:02d}c{im['col']:02d}f{im['field']:02d}p{im['plane']:02d}-ch{im['ch']}sk1fk1fl1.tiff"
        )
        tifffile.imwrite(img_dir / name, np.full((8, 8), im["plane"], np.uint16))
        entries.append(
            f'<Image Version="1"><id>x</id><State>Ok</State><URL>{name}</URL><Row>{im["row"]}</Row>'
            f"<Col>{im['col']}</Col><FieldID>{im['field']}</FieldID><PlaneID>{im['plane']}</PlaneID>"
            f"<TimepointID>0</TimepointID><SequenceID>1</SequenceID><ChannelID>{im['ch']}</ChannelID>"
            f"<ChannelName>{'Brightfield' if im['ch'] == 1 else 'Hoechst'}</ChannelName>"
            f"<AbsTime>{im['time']}</AbsTime></Image>"
        )
    if index:
        (img_dir / "Index.idx.xml").write_text(
            '<?xml version="1.0" encoding="utf-8"?>'
            f'<EvaluationInputData xmlns="{HARMONY_NS}" Version="1"><User>u</User>'
            f"<Plates><Plate><PlateID>{barcode}</PlateID><MeasurementID>m</MeasurementID>"
            f"<MeasurementStartTime>{start}</MeasurementStartTime><Name>screen {barcode}</Name>"
            '<PlateRows>16</PlateRows><PlateColumns>24</PlateColumns><Image id="x"/></Plate></Plates>'
            f"<Images>{''.join(entries)}</Images></EvaluationInputData>"
        )
    return img_dir


@pytest.fixture
def harmony_export():
    """Writes one Harmony export folder (``<folder>/Images`` with TIFFs and Index.idx.xml); see its docstring."""
    return _write_harmony_export
