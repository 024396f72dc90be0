"""Where metric inputs come from: fakes from a generator or an image set, reals from a dataset (3DGP ref §6.2-§6.6).

* :class:`GeneratorSource`: G_ema in eval mode with the shared sampler (``stages.nn.inputs``): z ~ N(0, I), classes
  from the dataset's label distribution, prior cameras through the adaptor, full-resolution render, truncation psi
  (1 by default; per-class mean w for conditional models, ref §8.2), uint8 quantisation of ref §6.3. Every stream is
  drawn from seeded CPU ``torch.Generator``s (the same fakes on any device). Inputs (z, class, camera) of sample i
  do not depend on N, so metrics of different sizes share their first fakes, and the renderer's own random draws
  (ray jitter, importance samples, noise) come from one generator per sample (``stages.nn.rng.SampleGenerators``
  seeded by (seed, stream, i)).
  A measurement must not depend on how it was batched, and float kernels are not batch-invariant (a GEMM of 3 rows
  and one of 8 round differently). So the generator always runs on fixed, aligned units of :data:`RENDER_UNIT` = 4
  samples (the official ``test_batch_gpu``; samples 4k .. 4k+3 together), and the detector on aligned batches of
  :data:`DETECTOR_BATCH`: sample i is the same image, bit for bit, whatever the number of processes sharing the
  work (each takes a range of whole units, ``stages.metrics.shard``). Every iterator takes ``part``, a range of
  global sample indices (or an int n: the first n).
  NFS renders (ref §6.5-§6.6): "frontal" prior (yaw 0, pitch pi/2) still passed through the adaptor, the raw depth
  with ``cut_quantile=0.5`` in chunks of 4 images x floor(2^24 / (4 * coarse steps * 3)) rays (43,690 at 32 steps),
  as the official eval renderer does.
* :class:`ImageSetSource`: any set of uint8 images (a folder, another generator's output, a dataset), given as a
  callable that yields the batches of a range of its items.
* :class:`DatasetSource`: a prepped dataset's items, never mirrored (ref §6.2 "mirroring forced off"): images for
  the detector, depth maps for depth realism, ground-truth depth (toy) and a content hash for the cache key.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from stages.common.images import to_uint8
from stages.common.seeding import derive_seed
from stages.nn.inputs import GeneratorInputs, make_generator, sample_generator_inputs
from stages.nn.rng import SampleGenerators

RENDER_UNIT = 4  # samples per generator pass in metrics (the official test_batch_gpu; module docstring)
DETECTOR_BATCH = 32  # images per detector pass (a multiple of RENDER_UNIT)
NFS_BATCH = RENDER_UNIT  # images per NFS chunk (ref §6.5 step 2): the density cut's quantile is over one chunk
NFS_CUT_QUANTILE = 0.5
STREAMS = {"images": 1, "nfs": 2, "depth": 3, "camera": 4, "mvc": 5}  # salts of the per-metric RNG streams
INPUT_BLOCK = 64  # generator inputs are drawn in blocks of this many samples (see GeneratorSource.inputs_range)
RENDER_SALT = 0x52454E44
CLASS_MEAN_SEED = 0  # per-class mean w for truncation: the same estimate as export's (ref §8.2)


def nfs_chunk_rays(batch: int = NFS_BATCH, num_coarse: int = 32) -> int:
    """Rays per image per chunk of the official eval renderer with a density cut: floor(2^24 / (B * S * 3))."""
    return max((1 << 24) // (batch * num_coarse * 3), 1)


def as_range(part: range | int) -> range:
    """``part`` as a range of sample indices (an int n means the first n)."""
    return range(part) if isinstance(part, int) else part


class GeneratorSource:
    """Fakes from a generator (module docstring). ``G`` must be in eval mode on ``device``."""

    kind = "generator"

    def __init__(self, G, prior, label_probs: np.ndarray | None, device: torch.device | str, seed: int = 0,
                 truncation: float = 1.0, noise_mode: str = "random"):
        self.G, self.prior, self.device = G, prior, torch.device(device)
        self.label_probs = label_probs if G.c_dim > 0 else None
        self.seed, self.truncation, self.noise_mode = int(seed), float(truncation), noise_mode

    @property
    def resolution(self) -> int:
        return int(self.G.img_resolution)

    def describe(self) -> dict:
        """What the metric card records about how fakes were made."""
        if self.label_probs is not None:
            classes = "dataset label distribution"
        elif self.G.c_dim > 0:
            classes = f"uniform over the {self.G.c_dim} classes (no dataset label distribution was available)"
        else:
            classes = "unconditional"
        return {"kind": self.kind, "seed": self.seed, "truncation": self.truncation, "noise_mode": self.noise_mode,
                "classes": classes, "truncation_center": "per-class mean w" if self.G.c_dim > 0 else "w_avg",
                "camera_sampling": "prior through the camera adaptor (NFS: frontal prior through the adaptor)",
                "render_rng": "one generator per sample i, seeded by (seed, stream, i)",
                "render_unit": RENDER_UNIT, "detector_batch": DETECTOR_BATCH,
                "resolution": self.resolution}

    def inputs(self, n: int, generator: torch.Generator, frontal: bool = False) -> GeneratorInputs:
        """``n`` fresh inputs from ``generator`` (the shared sampler, ``stages.nn.inputs``)."""
        G = self.G
        return sample_generator_inputs(n, G.z_dim, G.c_dim, self.prior, label_probs=self.label_probs,
                                       frontal=frontal, generator=generator, device=self.device)

    def inputs_range(self, stream: str, start: int, stop: int, frontal: bool = False) -> GeneratorInputs:
        """Inputs of samples ``start .. stop - 1`` of a stream. Samples are drawn in blocks of INPUT_BLOCK from
        generators seeded by (seed, stream, block), so sample i is the same whatever N and --batch are."""
        pieces = []
        for block in range(start // INPUT_BLOCK, (stop - 1) // INPUT_BLOCK + 1):
            gen = make_generator(derive_seed(self.seed, STREAMS[stream], block))
            full = self.inputs(INPUT_BLOCK, gen, frontal)
            lo, hi = max(start - block * INPUT_BLOCK, 0), min(stop - block * INPUT_BLOCK, INPUT_BLOCK)
            pieces.append(full)
            pieces[-1] = GeneratorInputs(full.z[lo:hi], None if full.c is None else full.c[lo:hi],
                                         full.camera_prior[lo:hi], None if full.labels is None else full.labels[lo:hi])
        if len(pieces) == 1:
            return pieces[0]
        cat = lambda xs: None if xs[0] is None else torch.cat(xs)  # noqa: E731
        return GeneratorInputs(cat([p.z for p in pieces]), cat([p.c for p in pieces]),
                               cat([p.camera_prior for p in pieces]), cat([p.labels for p in pieces]))

    def batches(self, stream: str, part: range | int,
                frontal: bool = False) -> Iterator[tuple[GeneratorInputs, SampleGenerators]]:
        """(inputs, per-sample render generators) per aligned unit of RENDER_UNIT samples of ``part`` of ``stream``
        (module docstring; ``part`` starts on a unit)."""
        part = as_range(part)
        assert part.start % RENDER_UNIT == 0, f"a part of the samples starts on a unit of {RENDER_UNIT}"
        for lo in range(part.start, part.stop, RENDER_UNIT):
            hi = min(lo + RENDER_UNIT, part.stop)
            gens = SampleGenerators([make_generator(derive_seed(self.seed, STREAMS[stream], RENDER_SALT, i))
                                     for i in range(lo, hi)])
            yield self.inputs_range(stream, lo, hi, frontal), gens

    def mapping(self, inputs: GeneratorInputs) -> torch.Tensor:
        """ws ``[n, num_ws, w_dim]`` with truncation towards the per-class mean w for conditional models (ref §8.2;
        the class means from a fixed generator, as export) and towards ``w_avg`` for unconditional ones."""
        G, psi = self.G, self.truncation
        center = None
        if psi != 1 and inputs.c is not None:
            center = G.mapping.class_mean_w(inputs.c, generator=make_generator(CLASS_MEAN_SEED))  # [n, w_dim]
        return G.mapping(inputs.z, inputs.c, truncation_psi=psi, w_center=center)

    @torch.no_grad()
    def render(self, inputs: GeneratorInputs, generator, **render_kwargs) -> dict:
        """G's outputs (img, depth, depth_adapted, camera) for ``inputs``."""
        ws = self.mapping(inputs)
        camera = self.G.camera_posterior(inputs.camera_prior, inputs.z, inputs.c)  # [n, 8]
        out = self.G.synthesis(ws, camera, noise_mode=self.noise_mode, generator=generator, **render_kwargs)
        return {**out, "camera": camera}

    def images(self, part: range | int) -> Iterator[torch.Tensor]:
        """uint8 ``[b, 3, R, R]`` aligned batches of DETECTOR_BATCH fakes of ``part`` (ref §6.3), on the generator's
        device (``part`` starts on a detector batch)."""
        part = as_range(part)
        assert part.start % DETECTOR_BATCH == 0, f"a part of the fakes starts on a batch of {DETECTOR_BATCH}"
        pending: list[torch.Tensor] = []
        for inputs, gen in self.batches("images", part):
            pending.append(to_uint8(self.render(inputs, gen)["img"]))
            if sum(len(p) for p in pending) == DETECTOR_BATCH:
                yield torch.cat(pending)
                pending = []
        if pending:
            yield torch.cat(pending)

    def nfs_depths(self, part: range | int) -> Iterator[torch.Tensor]:
        """Raw depth ``[b, 1, R, R]`` (world units) for NFS: frontal prior, 0.5 quantile cut, official chunks of
        NFS_BATCH images (``part`` starts on a chunk boundary: the cut couples the images of a chunk)."""
        part = as_range(part)
        assert part.start % NFS_BATCH == 0, "NFS shards start on a chunk of NFS_BATCH images"
        chunk = nfs_chunk_rays(NFS_BATCH, self.G.num_coarse_steps)
        for inputs, gen in self.batches("nfs", part, frontal=True):
            out = self.render(inputs, gen, cut_quantile=NFS_CUT_QUANTILE, chunk_rays=chunk)
            yield out["depth"].float()

    def depths(self, part: range | int) -> Iterator[torch.Tensor]:
        """Raw depth ``[b, 1, R, R]`` of ordinary fakes (prior cameras through the adaptor, no density cut)."""
        for inputs, gen in self.batches("depth", as_range(part)):
            yield self.render(inputs, gen)["depth"].float()

    @torch.no_grad()
    def cameras(self, part: range | int) -> tuple[torch.Tensor, torch.Tensor]:
        """(posterior ``[n, 8]``, prior ``[n, 8]``) cameras of the samples ``part`` (no rendering)."""
        part = as_range(part)
        inputs = self.inputs_range("camera", part.start, part.stop)
        posterior = self.G.camera_posterior(inputs.camera_prior, inputs.z, inputs.c)
        return posterior.float().cpu(), inputs.camera_prior.float().cpu()


class ImageSetSource:
    """A fixed set of uint8 images: ``batches(start, stop, batch)`` yields ``[b, 3, R, R]`` uint8 tensors of the
    items ``start .. stop - 1`` that decode (``count`` items in all; unreadable ones are skipped and counted in
    ``skipped`` by the callable's owner)."""

    kind = "images"

    def __init__(self, batches: Callable[[int, int, int], Iterator[torch.Tensor]], count: int, description: dict,
                 resolution: int, skipped: Callable[[], int] | None = None):
        self._batches, self.count, self._description, self.resolution = batches, int(count), description, resolution
        self._skipped = skipped

    def describe(self) -> dict:
        return {"kind": self.kind, **self._description, "count": self.count, "resolution": self.resolution}

    def skipped(self) -> int:
        """Items of the ranges read so far that did not decode (this process)."""
        return self._skipped() if self._skipped is not None else 0

    def images(self, part: range, batch: int = DETECTOR_BATCH) -> Iterator[torch.Tensor]:
        """The items ``part`` (clipped to ``count``) that decode."""
        stop = min(part.stop, self.count)
        if part.start < stop:
            yield from self._batches(part.start, stop, batch)


class _StoredImages(torch.utils.data.Dataset):
    """Un-mirrored stored images of an ``LmdbDataset`` (only the image blob is decoded)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return self.dataset.num_items

    def __getitem__(self, index: int) -> torch.Tensor:
        from stages.data.format import decode_image

        _, blobs = self.dataset._read(index)
        return torch.from_numpy(np.ascontiguousarray(decode_image(blobs["image"]).transpose(2, 0, 1)))


class DatasetSource:
    """A prepped dataset as the reference set (module docstring)."""

    kind = "dataset"

    def __init__(self, dataset, workers: int = 0):
        self.dataset, self.workers = dataset, int(workers)

    @property
    def resolution(self) -> int:
        return int(self.dataset.resolution)

    @property
    def count(self) -> int:
        return int(self.dataset.num_items)

    def meta_sha256(self) -> str:
        """The dataset's fingerprint: sha256 of its meta record (``stages.data.fingerprint``)."""
        from stages.data.fingerprint import meta_fingerprint

        return meta_fingerprint(self.dataset.meta)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": str(self.dataset.path), "count": self.count,
                "resolution": self.resolution, "meta_sha256": self.meta_sha256(), "mirror": False}

    def images(self, part: range | None = None, batch: int = DETECTOR_BATCH) -> Iterator[torch.Tensor]:
        """uint8 ``[b, 3, R, R]`` batches of the stored items ``part`` (default: all), never mirrored."""
        subset = _StoredImages(self.dataset)
        part = range(len(subset)) if part is None else range(part.start, min(part.stop, len(subset)))
        if part != range(len(subset)):
            subset = torch.utils.data.Subset(subset, part)
        if len(subset) == 0:
            return
        loader = torch.utils.data.DataLoader(subset, batch_size=batch, shuffle=False, num_workers=self.workers)
        yield from loader

    def has_depth_maps(self) -> bool:
        """Whether the dataset stores (estimated or precomputed) depth maps."""
        return bool(self.dataset.has_depth)

    def depth_maps(self, n: int, seed: int = 0, key: str = "depth") -> torch.Tensor | None:
        """``[m, 1, R, R]`` float depth of up to ``n`` items chosen with ``seed`` (``key``: depth or depth_gt)."""
        ds = self.dataset
        if key == "depth" and not ds.has_depth or key == "depth_gt" and not ds.meta.get("has_depth_gt"):
            return None
        if key == "depth_gt" and not ds.load_depth_gt:
            from stages.data.dataset import LmdbDataset

            ds = LmdbDataset(ds.path, max_items=ds.num_items, load_depth_gt=True)
        order = np.random.RandomState(seed & 0xFFFFFFFF).permutation(ds.num_items)[: min(n, ds.num_items)]  # 63-bit run seeds
        return torch.stack([ds[int(i)][key] for i in np.sort(order)])
