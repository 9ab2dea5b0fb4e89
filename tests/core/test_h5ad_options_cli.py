"""AnnData files with awkward metadata, option checking, and the CLI scaffold."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Literal

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import typer
from lcd_core import ConfigError, InputError, check_options, given, read_h5ad, record_params, write_h5ad


def test_write_h5ad_stores_columns_anndata_alone_cannot(tmp_path):
    idx = ["0", "1", "2"]
    obs = pd.DataFrame(
        {
            "all_none": pd.Series([None, None, None], dtype=object, index=idx),
            "str_none": pd.Series(["a", None, "b"], dtype=object, index=idx),
            "bool_none": pd.Series([True, None, False], dtype=object, index=idx),
            "int_none": pd.Series([1, None, 3], dtype=object, index=idx),
            "mixed": pd.Series(["a", 1, None], dtype=object, index=idx),
            "path": pd.Series([Path("/x/y.tif")] * 3, dtype=object, index=idx),
        }
    )
    adata = ad.AnnData(X=np.arange(6.0).reshape(3, 2), obs=obs)
    with pytest.raises(TypeError):  # the crash this fixes (anndata itself)
        adata.copy().write_h5ad(tmp_path / "raw.h5ad")  # (anndata converts its argument in place)
    write_h5ad(adata, tmp_path / "ok.h5ad")
    back = read_h5ad(tmp_path / "ok.h5ad")
    assert back.obs["all_none"].isna().all()
    assert list(back.obs["str_none"].astype(object).where(back.obs["str_none"].notna(), None)) == [
        "a",
        None,
        "b",
    ]
    assert list(back.obs["bool_none"]) == [True, pd.NA, False]
    assert list(back.obs["int_none"]) == [1, pd.NA, 3]
    assert list(back.obs["mixed"].astype(object)[:2]) == ["a", "1"] and pd.isna(back.obs["mixed"].iloc[2])
    assert set(back.obs["path"]) == {"/x/y.tif"}
    assert adata.obs["str_none"].dtype == object  # the caller's object is untouched
    np.testing.assert_array_equal(back.X, adata.X)


def test_read_h5ad_truncated(tmp_path):
    adata = ad.AnnData(X=np.ones((50, 40)))
    write_h5ad(adata, tmp_path / "a.h5ad")
    data = (tmp_path / "a.h5ad").read_bytes()
    (tmp_path / "t.h5ad").write_bytes(data[: len(data) // 3])
    with pytest.raises(InputError, match=r"t.h5ad: is not a valid h5ad file"):
        read_h5ad(tmp_path / "t.h5ad")
    (tmp_path / "csv.h5ad").write_text("a,b\n1,2\n")
    with pytest.raises(InputError, match=r"csv.h5ad: is not a valid h5ad file"):
        read_h5ad(tmp_path / "csv.h5ad")


def test_record_params_scanpy_style():
    adata = ad.AnnData(X=np.ones((2, 2)))
    record_params(
        adata,
        "X_mad",
        {"measurement_keys": ("plate", "timepoint"), "eps": np.float64(1e-18), "unset": None},
        dropped_features=["f"],
    )
    assert adata.uns["X_mad"] == {
        "params": {"measurement_keys": ["plate", "timepoint"], "eps": 1e-18},
        "dropped_features": ["f"],
    }


def _fn(
    data,
    *,
    n_draws: int = 1000,
    threshold: float = 0.8,
    keys: tuple[str, ...] = ("a",),
    mode: Literal["x", "y"] = "x",
    seed: int | None = 0,
):
    return None


@dataclasses.dataclass
class _Cfg:
    lr: float = 1e-3
    steps: int | None = None


def test_check_options():
    assert check_options({"n_draws": 200, "threshold": 1}, _fn, section="metrics", exclude=["data"]) == {
        "n_draws": 200,
        "threshold": 1,
    }
    with pytest.raises(ConfigError, match=r"metrics.n_drawz: unknown option; did you mean 'n_draws'\?"):
        check_options({"n_drawz": 1}, _fn, section="metrics")
    with pytest.raises(ConfigError, match=r"metrics.n_draws: expected int, got str '200'"):
        check_options({"n_draws": "200"}, _fn, section="metrics")
    with pytest.raises(ConfigError, match=r"metrics.n_draws: expected int, got bool"):
        check_options({"n_draws": True}, _fn, section="metrics")
    with pytest.raises(ConfigError, match=r"metrics.mode"):
        check_options({"mode": "z"}, _fn, section="metrics")
    with pytest.raises(ConfigError, match=r"metrics.data: unknown option"):
        check_options({"data": 1}, _fn, section="metrics", exclude=["data"])
    assert check_options({"seed": None, "keys": ["a", "b"]}, _fn, section="m")
    with pytest.raises(ConfigError, match=r"ssl.lr: expected float, got str"):
        check_options({"lr": "1e-3"}, _Cfg, section="ssl")
    assert isinstance(ConfigError("x"), InputError)
    assert given(a=None, b=0, c=False) == {"b": 0, "c": False}


def test_cli_scaffold_exit_codes_version_and_lists():
    from lcd_core.cli import handles_bad_input, make_app, split_list
    from typer.testing import CliRunner

    app = make_app("demo", "A demo app.", package="lcd-core")

    @app.command()
    @handles_bad_input
    def bad(kind: str = "input") -> None:
        if kind == "input":
            raise InputError("x.csv: column 'dose' not found\nsecond line")
        if kind == "missing":
            raise FileNotFoundError("y.csv: not found")
        raise KeyError("a bug")

    @app.command()
    def lists(item: Annotated[list[str] | None, typer.Option()] = None) -> None:
        typer.echo(repr(split_list(item)))

    runner = CliRunner()
    res = runner.invoke(app, ["bad"])
    assert res.exit_code == 2
    assert res.output.strip() == "error: x.csv: column 'dose' not found"
    assert runner.invoke(app, ["bad", "--kind", "missing"]).exit_code == 2
    bug = runner.invoke(app, ["bad", "--kind", "bug"])
    assert bug.exit_code == 1 and isinstance(bug.exception, KeyError)  # a bug is not bad input
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.startswith("lcd-core ")
    res = runner.invoke(app, ["lists", "--item", "a,b", "--item", "c"])
    assert res.output.strip() == "['a', 'b', 'c']"
    assert runner.invoke(app, ["-q", "lists"]).output.strip() == "None"


def test_cli_scaffold_is_exported_lazily():
    """`from lcd_core import make_app` gives lcd_core.cli's function; `import lcd_core` alone loads no typer."""
    import subprocess
    import sys

    import lcd_core
    import lcd_core.cli as cli_module

    for name in ("make_app", "handles_bad_input", "fail", "split_list", "split_ints", "optional_key"):
        assert name in lcd_core.__all__
        assert getattr(lcd_core, name) is getattr(cli_module, name)
    code = "import sys, lcd_core; lcd_core.load_profiles; print('typer' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
