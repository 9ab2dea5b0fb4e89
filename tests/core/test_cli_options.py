"""The option types and given_keys every LCD command shares (lcd_core.cli, exported lazily)."""

import pytest

typer = pytest.importorskip("typer")


def test_given_keys_passes_none_on_only_when_given():
    from lcd_core import given, given_keys

    assert given_keys(timepoint_key=None, dose_key="dose") == {"dose_key": "dose"}
    assert given_keys(timepoint_key="none", fov_key="") == {"timepoint_key": None, "fov_key": None}
    # what given alone would do with a typed `none`: drop it, so the API default would stand
    assert given(timepoint_key=None) == {}


def test_shared_option_types_build_a_command_with_none_defaults():
    from lcd_core import Columns, Control, Features, Key, Layer, OptionalKey, Out, Seed, UseRep, split_list
    from typer.testing import CliRunner

    app = typer.Typer()

    @app.command()
    def cmd(
        out: Out,
        by: Columns = None,
        key: Key = None,
        maybe: OptionalKey = None,
        control: Control = None,
        features: Features = None,
        layer: Layer = None,
        use_rep: UseRep = None,
        seed: Seed = None,
    ) -> None:
        typer.echo(repr((out.name, split_list(by), key, maybe, control, features, layer, use_rep, seed)))

    run = CliRunner().invoke(app, ["-o", "x.csv", "--by", "a,b", "--by", "c", "--seed", "3"])
    assert run.exit_code == 0, run.output
    assert run.output.strip() == repr(("x.csv", ["a", "b", "c"], None, None, None, None, None, None, 3))
