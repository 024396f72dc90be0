"""``run_prep``: list inputs -> decode/crop/resize (worker processes) -> depth -> embedding -> write (3DGP ref §7).

Batches are committed to ``OUT.partial`` one LMDB transaction at a time, together with the progress record
(next input, items written, label counts) and the skipped inputs, so ``kill -9`` at any moment and the same
command again resumes after the last committed batch; items are numbered in input order, so the result is
identical to an uninterrupted run. The meta record goes in last, then ``OUT.partial`` is renamed to ``OUT``.

Before any work: the output paths are vetted (:mod:`stages.prep.resume`: only our own folders are ever replaced),
the source is listed and fingerprinted (a resume on a changed source is refused), the depth decision is made for
the whole source (:mod:`stages.prep.models`) and disk and memory are checked (:mod:`stages.prep.limits`).
"""
from __future__ import annotations

import functools
import logging
import time

import numpy as np

from stages.common.errors import BadFileError
from stages.common.progress import progress_bar
from stages.data.format import (
    PROGRESS_KEY,
    SKIP_PREFIX,
    encode_depth,
    encode_embedding,
    item_key,
    pack_item,
)
from stages.data.lmdb_store import DatasetWriter
from stages.data.summary import DatasetSummary, folder_size
from stages.prep.config import PrepConfig, PrepResult
from stages.prep.fingerprint import source_fingerprint
from stages.prep.limits import check_resources
from stages.prep.models import DepthSetup, resolve_depth_name, setup_depth, setup_embedder
from stages.prep.report import REPORT_NAME, build_meta, write_report
from stages.prep.resume import (
    check_existing_output,
    check_output_paths,
    check_partial,
    lock_output,
    open_partial,
    partial_dir,
    publish,
    read_partial_state,
)
from stages.prep.selection_plan import load_selection_detector, select_units
from stages.prep.sources import Loaded, Skipped, Unit, build_source, load_unit
from stages.prep.workers import decoded_batches, make_pool

logger = logging.getLogger(__name__)
_LIST_SKIP = SKIP_PREFIX + b"list/"  # entries skipped while listing the source (links, FIFOs, ...)


def _batch_records(results: list, first: int, state: dict, depth: DepthSetup, embedder) -> tuple[dict, dict]:
    """Encode one decoded batch into LMDB puts; updates ``state`` (items, label counts, next input)."""
    good = [r for r in results if isinstance(r, Loaded)]
    skips = {
        SKIP_PREFIX + item_key(first + i): {"source": r.source, "reason": r.reason}
        for i, r in enumerate(results)
        if isinstance(r, Skipped)
    }
    depth_maps = embeddings = None
    if good and (depth.mode == "model" or embedder is not None):
        images = np.stack([r.image for r in good])  # [n, R, R, 3] uint8
        if depth.mode == "model":
            from stages.prep.depth import encode_depth_uint16

            depth_maps = depth.estimator.predict(images)  # [n, R, R] float32, larger = farther
            depth_maps = [encode_depth(encode_depth_uint16(d)) for d in depth_maps]
        if embedder is not None:
            embeddings = embedder.embed(images)  # [n, D] float32
    puts = {}
    for j, r in enumerate(good):
        blobs = {
            "image": r.image_blob,
            "depth": depth_maps[j] if depth_maps is not None else r.depth_blob,
            "embedding": encode_embedding(embeddings[j]) if embeddings is not None else None,
            "depth_gt": r.depth_gt,
        }
        puts[item_key(state["num_items"])] = pack_item(blobs, r.label, r.source)
        state["num_items"] += 1
        if r.label is not None:
            state["label_counts"][r.label] += 1
    state["next_unit"] = first + len(results)
    return puts, {PROGRESS_KEY: state, **skips}


def _write_items(cfg: PrepConfig, units, state, writer: DatasetWriter, pool, depth, embedder) -> None:
    """Decode, estimate, embed and commit every unit from ``state["next_unit"]`` on."""
    keep_array = depth.mode == "model" or embedder is not None
    fn = functools.partial(_load, cfg, depth_mode=depth.mode, keep_array=keep_array)
    start = state["next_unit"]
    with progress_bar(len(units), f"prep {cfg.source}", unit="img", completed=start) as advance:
        for first, results in decoded_batches(pool, fn, units, start, cfg.batch_size):
            puts, json_puts = _batch_records(results, first, state, depth, embedder)
            writer.commit(puts, json_puts)
            advance(len(results))


def _load(cfg: PrepConfig, unit: Unit, depth_mode: str, keep_array: bool):
    """``load_unit`` with this run's resolution and input caps (picklable through functools.partial)."""
    return load_unit(unit, cfg.resolution, depth_mode, keep_array, max_pixels=cfg.max_pixels,
                     max_bytes=cfg.max_file_mb << 20)


def run_prep(cfg: PrepConfig) -> PrepResult:
    """Build (or resume, or confirm) the dataset ``cfg`` describes; see the module docstring (3DGP ref §7)."""
    from stages.common.allocator import tune_glibc_malloc

    cfg.validate()
    tune_glibc_malloc()  # the embedder's and depth model's activations stay in the heap (41 -> 21 s for `prep toy`)
    started = time.perf_counter()
    check_output_paths(cfg)
    with lock_output(cfg):
        return _run_locked(cfg, started)


def _run_locked(cfg: PrepConfig, started: float) -> PrepResult:
    plan = build_source(cfg)
    fingerprint = source_fingerprint(plan)
    existing = check_existing_output(cfg, fingerprint)
    if existing is not None:
        logger.info("%s is already complete (same arguments and source); nothing to do", cfg.out)
        return _result(cfg, existing, 0, existing["num_items"], started, already_complete=True)
    partial = read_partial_state(cfg)  # the one read of an unfinished run's records
    check_partial(cfg, fingerprint, partial)
    depth_name = resolve_depth_name(cfg, plan)  # validate before forking workers
    check_resources(cfg, plan, depth_name, partial.next_unit if partial else 0)
    plan.description["fingerprint"] = fingerprint
    pool = make_pool(cfg.workers)
    ok = False
    try:
        depth = setup_depth(cfg, depth_name)  # most likely to fail (weights): before touching the output
        embedder, embedder_info = setup_embedder(cfg)
        models = (depth, embedder, embedder_info, load_selection_detector(cfg))  # every model before the output
        writer = open_partial(cfg, fingerprint)
        try:
            finished = partial.finished_meta if partial else None
            meta, num_resumed = _build(cfg, plan, writer, pool, models, started, finished)
        finally:
            writer.close()
        ok = True
    finally:
        if pool is not None:
            pool.close(abort=not ok)
    publish(cfg)
    return _result(cfg, meta, num_resumed, meta["num_items"], started)


def _build(cfg, plan, writer, pool, models, started, finished) -> tuple[dict, int]:
    """Selection, item writing, report and meta record inside an open partial dataset (``models``: depth setup,
    embedder, its info and the selection detector; ``finished``: the meta record of a previous run that finished
    but was killed before publishing, else None)."""
    depth, embedder, embedder_info, detector = models
    if finished is not None:
        return finished, finished["num_items"]
    if plan.skipped:
        writer.commit({}, {_LIST_SKIP + f"{i:09d}".encode(): {"source": s.source, "reason": s.reason}
                           for i, s in enumerate(plan.skipped)})
    map_units = functools.partial(_map_units, pool, cfg)
    units = select_units(cfg, plan.units, writer, map_units, detector)
    state = writer.get_json(PROGRESS_KEY) or {"next_unit": 0, "num_items": 0, "label_counts": [0] * len(plan.class_names)}
    num_resumed = state["num_items"]
    if state["next_unit"]:
        logger.info("resuming %s: %d of %d inputs already done", partial_dir(cfg.out), state["next_unit"], len(units))
    _write_items(cfg, units, state, writer, pool, depth, embedder)
    skipped = [value for _, value in writer.items_with_prefix(SKIP_PREFIX)]
    report = write_report(writer.path, cfg, len(units), state["num_items"], skipped, num_resumed,
                          time.perf_counter() - started)
    if state["num_items"] == 0:
        reasons = sorted({s["reason"].split(" (")[0] for s in skipped})[:3]
        raise BadFileError(cfg.src or cfg.out, f"none of the {len(units)} inputs could be read "
                           f"({'; '.join(reasons)}; see {report})")
    if skipped:
        logger.debug("skipped %d of %d inputs (listed in %s)", len(skipped), len(units), cfg.out / REPORT_NAME)
    meta = build_meta(cfg, plan, depth.info, embedder_info, state["num_items"], state["label_counts"], len(skipped))
    writer.finish(meta)
    return meta, num_resumed


def _map_units(pool, cfg: PrepConfig, units: list[Unit]) -> list:
    """Decode ``units`` with pixels kept (used by instance selection)."""
    fn = functools.partial(_load, cfg, depth_mode="none", keep_array=True)
    return pool.map(fn, units) if pool is not None else [fn(u) for u in units]


def _result(cfg: PrepConfig, meta: dict, num_resumed: int, num_items: int, started: float,
            already_complete: bool = False) -> PrepResult:
    """Write the optional preview and package the result."""
    seconds = time.perf_counter() - started
    preview = None
    if cfg.preview is not None:
        from stages.data.preview import save_dataset_preview

        preview = save_dataset_preview(cfg.out, cfg.preview)
    written = 0 if already_complete else num_items - num_resumed
    return PrepResult(
        out=cfg.out,
        num_items=num_items,
        num_skipped=int(meta["num_skipped"]),
        num_resumed=num_resumed,
        seconds=seconds,
        images_per_second=written / seconds if seconds > 0 else 0.0,
        report_path=cfg.out / REPORT_NAME,
        preview_path=preview,
        summary=DatasetSummary.from_meta(cfg.out, meta, folder_size(cfg.out)),
        already_complete=already_complete,
    )
