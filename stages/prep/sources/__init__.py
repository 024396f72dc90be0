"""Prep sources (toy, folder, zip, imagenet, lsun): each lists its inputs as ``Unit``s in a deterministic order;
``units.load_unit`` decodes one in a worker process (3DGP ref §7.1)."""
from __future__ import annotations

from stages.prep.config import PrepConfig
from stages.prep.sources.units import Loaded, SourcePlan, Skipped, Unit, load_unit

__all__ = ["Loaded", "SourcePlan", "Skipped", "Unit", "build_source", "load_unit"]


def build_source(cfg: PrepConfig) -> SourcePlan:
    """List the inputs of ``cfg.source`` (raises BadFileError/BadOptionError for a bad SRC or option)."""
    if cfg.source == "toy":
        from stages.prep.sources.toy import list_toy_units

        return list_toy_units(cfg.options.num, cfg.options.seed, cfg.options.scenes)
    if cfg.source in ("folder", "zip"):
        from stages.prep.sources.folder import list_folder_units

        return list_folder_units(cfg.src, cfg.source, cfg.options.max_images, cfg.max_file_mb, cfg.options.max_classes)
    if cfg.source == "imagenet":
        from stages.prep.sources.imagenet import list_imagenet_units, read_classes_file

        classes = cfg.options.classes
        if cfg.options.classes_file is not None:
            classes = tuple(classes or ()) + read_classes_file(cfg.options.classes_file)
        return list_imagenet_units(cfg.src, classes, cfg.options.synset_map, cfg.options.max_per_class)
    if cfg.source == "lsun":
        from stages.prep.sources.lsun import list_lsun_units

        return list_lsun_units(cfg.src, cfg.options.max_images)
    raise AssertionError(cfg.source)
