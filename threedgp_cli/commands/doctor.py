"""``3dgp doctor``: report the environment (versions, GPUs, CUDA toolchain, custom ops) and build the ops early.

Thin: options -> ``stages.doctor.DoctorRequest`` -> ``stages.doctor.run`` -> the report (3DGP ref §9), rendered here.
"""
from __future__ import annotations

import json
from typing import Annotated

import typer

from threedgp_cli.console import console


def doctor(
    build_ops: Annotated[
        bool, typer.Option("--build-ops", help="Build the CUDA ops now (needs a CUDA torch, a GPU and nvcc).")
    ] = False,
    check_only: Annotated[
        bool,
        typer.Option(
            "--check-only",
            help="Do not build: compile-check the CUDA kernels with a bare `nvcc -c`; exit 0 unless that fails.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON (for scripts).")] = False,
) -> None:
    """Show python/torch/GPU/toolchain versions and the custom-ops status; optionally build the ops."""
    from stages.doctor import DoctorRequest, run

    report = run(DoctorRequest(build=build_ops, check_only=check_only, verbose=not as_json))
    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        _render(report)
    if "build" in report and not report["build"]["ok"]:
        raise typer.Exit(code=1)


def _render(report: dict) -> None:
    """Human-readable tables."""
    from rich.table import Table

    table = Table(title="3dgp doctor", show_header=False, title_justify="left")
    table.add_column("item", style="bold")
    table.add_column("value")
    table.add_row("python", f"{report['python']['version']} ({report['python']['executable']})")
    for name, version in report["packages"].items():
        table.add_row(name, version or "[red]not installed[/red]")
    tinfo = report["torch"]
    table.add_row("torch CUDA", str(tinfo.get("cuda") or "none (CPU build)"))
    gpus = tinfo.get("gpus") or []
    table.add_row("GPUs", ", ".join(f"{g['name']} (sm {g['capability']}, {g['memory_gib']} GiB)" for g in gpus)
                  or "none visible")
    tools = report["toolchain"]
    for key in ("nvcc", "cxx", "ninja"):
        entry = tools[key]
        table.add_row(key, f"{entry['path']}  {entry['version'] or ''}".strip() if entry["path"] else "not found")
    table.add_row("CUDA_HOME", f"env={tools['cuda_home']['env']}  resolved={tools['cuda_home']['resolved']}")
    ops = report["ops"]
    table.add_row("ops", f"{ops['state']}" + (f": {ops['reason']}" if ops.get("reason") else ""))
    table.add_row("ops fallback", f"{ops['fallback']} (THREEDGP_STRICT_OPS={'1' if ops['strict'] else '0'})")
    table.add_row("ops on CUDA", ", ".join(ops["cuda_policy"]) or "none: reference path (THREEDGP_OPS)")
    table.add_row("ops cache", ops["cache_root"])
    console.print(table)
    if "build" in report:
        _render_build(report["build"])


def _render_build(build: dict) -> None:
    if build["action"] == "compile-check":
        checks = build.get("compile_check")
        if checks is None:
            console.print(f"compile-check skipped: {build.get('note')}")
        for name, status in (checks or {}).items():
            console.print(f"nvcc -c {name}: {'[green]' if status.startswith('ok') else '[red]'}{status}")
        if build.get("reason"):
            console.print(f"(a full build is not possible here: {build['reason']})")
    elif build.get("cache_dir"):
        console.print(f"[green]CUDA ops built[/green]: {build['cache_dir']}")
        for op, check in (build.get("selfcheck") or {}).items():
            verdict = "[green]passed[/green]" if check["passed"] else f"[red]FAILED[/red] ({check['problem']})"
            console.print(f"self-check {op} on {check['device']}: {verdict}, max relative error {check['max_error']:.1e}")
    else:
        console.print(f"[red]cannot build the CUDA ops[/red]: {build['reason']}")
