"""Fixtures for the prep tests (helpers live in prep_testutils.py)."""
from __future__ import annotations

import pytest


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """Run ``3dgp ARGS`` in-process; returns (exit code, stdout, stderr)."""
    from threedgp_cli.app import main

    monkeypatch.delenv("THREEDGP_DEBUG", raising=False)

    def run(*args):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        out, err = capsys.readouterr()
        return code, out, err

    return run
