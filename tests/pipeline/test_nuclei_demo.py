"""The pipeline's nuclei wiring: the demo's nuclei options (label-free TIE + classical counter)."""

import pytest
from lcd_pipeline.config import demo_config, validate


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
