"""The READMEs' "What bad input gets" sections match the census (regenerate with report.py --write)."""

from __future__ import annotations

from census import CLASSES, OUTCOMES


def test_readme_sections_are_current():
    import report

    assert report.main(["--check"]) == 0


def test_every_package_and_class_is_in_the_census():
    import report

    cases = report.census()
    assert set(cases) == {
        "lcd-core",
        "lcd-metrics",
        "lcd-norm",
        "lcd-moa",
        "lcd-embed",
        "lcd-ssl",
        "lcd-nuclei",
        "lcd-pipeline",
    }
    used = {c.kind for group in cases.values() for c in group}
    assert used == set(CLASSES), set(CLASSES) - used
    assert {c.expect for group in cases.values() for c in group} == set(OUTCOMES)


def test_every_command_is_in_the_census():
    """Each command of the seven CLIs (and lcd's own) has at least one case."""
    import report
    import typer

    apps = {
        "lcd-metrics": "lcd_metrics.cli",
        "lcd-norm": "lcd_norm.cli",
        "lcd-moa": "lcd_moa.cli",
        "lcd-embed": "lcd_embed.cli",
        "lcd-ssl": "lcd_ssl.cli",
        "lcd-nuclei": "lcd_nuclei.cli",
        "lcd-pipeline": "lcd_pipeline.cli",
    }
    cases = report.census()
    for package, module in apps.items():
        import importlib

        app = importlib.import_module(module).app
        group = typer.main.get_group(app)
        commands = set(group.commands)
        used = {c.run.split()[0] for c in cases[package] if isinstance(c.run, str)}
        assert commands <= used, (package, commands - used)
