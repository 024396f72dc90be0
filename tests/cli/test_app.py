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


@pytest.mark.parametrize("argv, message", [
    (["train", "--batch", "abc"], "Error: --batch: Input should be a valid integer"),
    (["train", "--nope"], "Error: --nope: no such option"),
    (["eval", "--batch"], "Error: --batch: requires an argument"),
    (["export"], "Error: CKPT: missing argument (see 3dgp export --help)"),
    (["export", "x", "--grid=1"], "Error: --grid: does not take a value"),
    (["info"], "Error: "),
    (["prep", "nope"], "Error: No such command 'nope'"),
    (["trian"], "Error: No such command 'trian'. Did you mean 'train'?"),
])
def test_usage_errors_are_one_line_and_exit_1(argv, message, monkeypatch, capsys):
    """Typer's own usage errors (bad type, missing argument, unknown option or command) match the README: one
    line, exit code 1, for every command."""
    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    code, out, err = run_main(argv, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and err.startswith(message), err
    assert "Usage:" not in err and "╭" not in err


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["eval", "--help"], ["export", "--help"],
                                  ["prep", "--help"], ["info", "--help"], []])
def test_help_exits_0(argv, capsys):
    code, out, err = run_main(argv, capsys)
    assert code == 0 and "Usage" in out and not err


def test_messages_are_folded_into_one_line(monkeypatch, capsys):
    from stages.common.errors import BadFileError
    from threedgp_cli import app as app_module

    @app_module.app.command("_boom2", hidden=True)
    def _boom2():
        raise BadFileError("x.pt", "line one\n\tline two\x1b[1m bold\x1b[0m")

    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)
    try:
        code, _, err = run_main(["_boom2"], capsys)
    finally:
        app_module.app.registered_commands[:] = [c for c in app_module.app.registered_commands if c.name != "_boom2"]
    assert code == 1 and err == "Error: x.pt: line one line two bold\n"


def test_commands_are_registered_by_the_app_without_an_import_cycle():
    """Issue 11: command modules import nothing from ``threedgp_cli.app``; the app registers each one."""
    import ast
    from pathlib import Path

    import threedgp_cli.commands as commands
    from threedgp_cli.app import app

    for path in Path(commands.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert "threedgp_cli.app" not in imported, path.name
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert names == ["info", "train", "eval", "export", "compare", "doctor", "prep", "demo"]
