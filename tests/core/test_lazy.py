"""Lazy exports: a name that is also a submodule's name stays the exported object."""

import subprocess
import sys


def test_exported_name_survives_loading_its_submodule():
    # `track` loads lcd_core.progress; the import system then binds the *module* to lcd_core.progress,
    # which used to shadow the exported function `progress` for the rest of the process
    code = (
        "from lcd_core import track\n"
        "import lcd_core.progress\n"
        "from lcd_core import progress\n"
        "assert callable(progress) and progress.__module__ == 'lcd_core.progress', progress\n"
        "with progress(2, 'x', enabled=False) as advance:\n"
        "    advance()\n"
        "print('ok')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr
