"""The pipeline's nuclei wiring: counts joined to the simulator's truth, the demo's nuclei options."""

import pandas as pd
import pytest
from lcd_pipeline.config import demo_config, validate
from lcd_pipeline.truth import nuclei_vs_truth


def test_counts_join_their_true_counts_by_field():
    fields = pd.DataFrame(
        {
            "plate": ["P1", "P1", "P2", "P2"],
            "well": ["B02", "B02", "B02", "C03"],
            "fov": [1, 2, 1, 1],
            "timepoint": [1, 1, 1, 1],
            "nuclei_count": [10, 20, 30, 40],
        }
    )
    # keys as h5ad obs brings them back: categorical / str, rows in another order, a subset of fields
    counts = pd.DataFrame(
        {
            "plate": pd.Categorical(["P2", "P1", "P2"]),
            "well": ["C03", "B02", "B02"],
            "fov": ["1", "2", "1"],
            "timepoint": [1, 1, 1],
            "nuclei_count": [41, 19, 30],
        }
    )
    out = nuclei_vs_truth(counts, fields)
    assert out["nuclei_count"].tolist() == [41, 19, 30]
    assert out["true_nuclei_count"].tolist() == [40, 20, 30]


def test_a_counted_field_without_truth_is_an_error():
    fields = pd.DataFrame({"plate": ["P1"], "well": ["B02"], "fov": [1], "nuclei_count": [5]})
    counts = pd.DataFrame({"plate": ["P1"], "well": ["B03"], "fov": [1], "nuclei_count": [5]})
    with pytest.raises(ValueError, match="no true count"):
        nuclei_vs_truth(counts, fields)
    with pytest.raises(ValueError, match="share none"):
        nuclei_vs_truth(counts[["nuclei_count"]], fields)


def test_demo_counts_label_free_with_the_tie_channel(tmp_path):
    cfg = demo_config(tmp_path / "demo")
    nuclei = cfg["nuclei"]
    assert nuclei["use_vit"] is False and nuclei["channel"] == "tie" and nuclei["polarity"] == "auto"
    # the simulator draws nuclei of radius 0.45 x cell_radius (8 px in the demo preset): diameter 7.2 px
    assert nuclei["diameter"] == pytest.approx(7.2)
    validate(cfg)  # every key is a DiscoveryParams option or a pipeline option


def test_nuclei_section_typos_are_refused(tmp_path):
    from lcd_core import ConfigError

    cfg = demo_config(tmp_path / "demo")
    cfg["nuclei"]["diamter"] = 7
    with pytest.raises((ConfigError, ValueError), match="diamter"):
        validate(cfg)
