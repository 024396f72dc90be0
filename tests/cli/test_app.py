"""The CLI shell: version, help without torch, and the one error boundary."""
from __future__ import annotations

import subprocess
import sys

import pytest

from threedgp_cli import __version__
from threedgp_cli.app import main


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, err = capsys.readouterr()
    return info.value.code, out, err


def test_version(capsys):
    code, out, _ = run_main(["--version"], capsys)
    assert code == 0
    assert out.strip() == f"3dgp {__version__}"


def test_help_does_not_import_torch():
    code = (
        "import sys\n"
        "from threedgp_cli.app import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "assert 'torch' not in sys.modules, 'torch imported by --help'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "prep" in res.stdout or "Usage" in res.stdout


def test_error_boundary_one_line(monkeypatch, capsys):
    from stages.common.errors import BadOptionError
    from threedgp_cli import app as app_module

    @app_module.app.command("_boom", hidden=True)
    def _boom():
        raise BadOptionError("resolution", "must be a power of two, got 100")

    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    code, _, err = run_main(["_boom"], capsys)
    assert code == 1
    assert err.strip() == "Error: --resolution: must be a power of two, got 100"
    assert "Traceback" not in err
    app_module.app.registered_commands[:] = [c for c in app_module.app.registered_commands if c.name != "_boom"]
