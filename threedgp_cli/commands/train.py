"""``3dgp train``: options -> ``stages.train.TrainRequest`` -> ``stages.train.run`` -> the resolved config for
``--dry-run`` (3DGP ref §5, §10; issue 5). The options that set config values go through the stage's one flag
table (``stages.train.flags``)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common.devices import DEVICE_HELP
from threedgp_cli.commands.paths import nonempty_path

_RUN = "Run"
_ABL = "Ablations"


_Precision = Annotated[Optional[str], typer.Option(
    "--precision", help="fp32 (official, default), tf32, or bf16 (tri-plane backbone and MLP in bfloat16).",
    rich_help_panel=_RUN)]
_Minutes = Annotated[Optional[float], typer.Option(
    "--minutes", help="Also stop cleanly after this many wall-clock minutes (final snapshot and state).",
    rich_help_panel=_RUN)]
_MinKimg = Annotated[Optional[float], typer.Option(
    "--min-kimg", help="With --minutes: never stop before this many kimg (on a busy machine the run takes longer "
    "instead of learning less; the status line's ETA says when).", rich_help_panel=_RUN)]
_Threads = Annotated[Optional[str], typer.Option(
    "--threads", help="CPU threads: N, or auto = the cores other programs leave free, re-checked every tick (on a "
    "busy machine one thread per free core is several times faster than one per core). Default: one per core "
    "(the demo preset: auto).", rich_help_panel=_RUN)]
_Set = Annotated[Optional[list[str]], typer.Option(
    "--set", help="section.key=value for any other config field (repeatable).")]
_BatchGpu = Annotated[Optional[int], typer.Option(
    "--batch-gpu", help="Per-process micro-batch (gradient accumulation).", rich_help_panel=_RUN)]
_Gpus = Annotated[Optional[int], typer.Option(
    "--gpus", help="Processes to spawn on this node (may change on --resume: the global batch stays).",
    rich_help_panel=_RUN)]
_MaxRollbacks = Annotated[Optional[int], typer.Option(
    "--max-rollbacks", help="Give up after this many divergence rollbacks.", rich_help_panel=_RUN)]
_KdWeight = Annotated[Optional[float], typer.Option(
    "--kd-weight", help="Knowledge-distillation weight; 0 = off.", rich_help_panel=_ABL)]
_NoDepthAdaptor = Annotated[bool, typer.Option(
    "--no-depth-adaptor", help="Feed raw (normalized) depth to D.", rich_help_panel=_ABL)]
_NoCameraAdaptor = Annotated[bool, typer.Option(
    "--no-camera-adaptor", help="Fixed camera prior, no adaptor.", rich_help_panel=_ABL)]
_NoDepth = Annotated[bool, typer.Option(
    "--no-depth", help="No depth channel at all (plain EpiGRAF, 3-channel D).", rich_help_panel=_ABL)]
_DepthAdaptorP = Annotated[Optional[float], typer.Option(
    "--depth-adaptor-p", help="Ablation: fixed probability in [0, 1] that D sees the adapted depth "
    "(0 = raw depth only, i.e. no adaptor; 1 = adapted only; default: the official schedule, 0.75 -> 0.9).",
    rich_help_panel=_ABL)]


def train(
    data: Annotated[Optional[Path], typer.Option(
        "--data", parser=nonempty_path, help="Dataset directory written by `3dgp prep` (with --resume: the run's "
        "dataset, moved elsewhere).")] = None,
    outdir: Annotated[Path, typer.Option("--outdir", parser=nonempty_path,
                                         help="Parent of the numbered run directories.")] = Path("runs"),
    preset: Annotated[Optional[str], typer.Option(
        "--preset", help="tiny (CPU, minutes), demo (make demo: toy --scenes simple, 40 kimg, ~10 CPU minutes), toy64, "
        "dogs, elephants, horses, imagenet.")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Resume the latest run under --outdir, or the run dir / checkpoint given as RESUME_FROM.",
        rich_help_panel=_RUN)] = False,
    resume_from: Annotated[Optional[Path], typer.Argument(
        parser=nonempty_path, help="With --resume: a run directory or a training-state-*.pt file.",
        show_default=False)] = None,
    force_override: Annotated[bool, typer.Option(
        "--force-override", help="With --resume: options given now win over the saved config (runtime options "
        "--gpus, --device, --batch-gpu, --minutes, --min-kimg, --threads change without it).",
        rich_help_panel=_RUN)] = False,
    kimg: Annotated[Optional[float], typer.Option("--kimg", help="Length in kimg (> 0).",
                                                  rich_help_panel=_RUN)] = None,
    batch: Annotated[Optional[int], typer.Option("--batch", help="Global batch (all processes).",
                                                 rich_help_panel=_RUN)] = None,
    batch_gpu: _BatchGpu = None,
    gamma: Annotated[Optional[float], typer.Option("--gamma", help="R1 weight >= 0 (default: preset / auto).",
                                                   rich_help_panel=_RUN)] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Random seed.", rich_help_panel=_RUN)] = None,
    gpus: _Gpus = None,
    device: Annotated[Optional[str], typer.Option(
        "--device", help=DEVICE_HELP + " With --gpus N, cuda puts process k on GPU k.", rich_help_panel=_RUN)] = None,
    metrics: Annotated[Optional[str], typer.Option(
        "--metrics", help="Comma list, e.g. fid2k,nfs256; 'none' for no metrics.", rich_help_panel=_RUN)] = None,
    max_rollbacks: _MaxRollbacks = None,
    precision: _Precision = None,
    minutes: _Minutes = None,
    min_kimg: _MinKimg = None,
    threads: _Threads = None,
    kd_weight: _KdWeight = None,
    no_depth_adaptor: _NoDepthAdaptor = False,
    depth_adaptor_p: _DepthAdaptorP = None,
    no_camera_adaptor: _NoCameraAdaptor = False,
    no_depth: _NoDepth = False,
    set_: _Set = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved config and exit.")] = False,
) -> None:
    """Train 3DGP on a prepped dataset in a new numbered run directory (or resume one)."""
    from stages.train import TrainRequest, run
    from stages.train.flags import flag_overrides

    given = {"--data": data, "--kimg": kimg, "--batch": batch, "--batch-gpu": batch_gpu, "--gamma": gamma,
             "--seed": seed, "--gpus": gpus, "--device": device, "--metrics": metrics, "--threads": threads,
             "--max-rollbacks": max_rollbacks, "--precision": precision, "--minutes": minutes, "--min-kimg": min_kimg,
             "--kd-weight": kd_weight, "--no-depth-adaptor": no_depth_adaptor, "--depth-adaptor-p": depth_adaptor_p,
             "--no-camera-adaptor": no_camera_adaptor, "--no-depth": no_depth}
    request = TrainRequest(preset=preset, outdir=str(outdir), overrides=tuple(flag_overrides(given, set_ or [])),
                           resume=resume, resume_from=str(resume_from) if resume_from is not None else None,
                           force_override=force_override, dry_run=dry_run)
    result = run(request)
    if result.printed_config is not None:
        typer.echo(result.printed_config)
