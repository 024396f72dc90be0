"""The 3DGP networks (3DGP ref §1-§4).

Import from the modules directly; this package file imports nothing, so importing one module never pulls in the
others (nor torch).

* ``layers``: equalized-lr FC and conv layers, ``normalize_2nd_moment`` (ref §1.1).
* ``mapping``: the mapping network z, c -> ws with w_avg tracking and truncation (ref §1.1, §8.2).
* ``synthesis``: modulated convs and the StyleGAN2 "skip" tri-plane synthesis network (ref §1.2).
* ``triplane``: tri-plane sampling and the decoding MLP (ref §1.3).
* ``generator``: the full generator: mapping + tri-plane + renderer + camera and depth adaptors (ref §1.8).
* ``rays``, ``render``: camera rays and volume rendering (ref §1.4-§1.6).
* ``camera_prior``, ``camera_adaptor``, ``camera``: the camera prior, the camera adaptor and its regularizers (ref §2).
* ``depth_adaptor``: the depth adaptor (ref §3.1-§3.2); ``patches``: patch sampling and real-patch extraction (ref §1.7).
* ``scalar_encoder``, ``disc_blocks``, ``discriminator``: the patch-wise discriminator with its KD head (ref §4).
* ``config``, ``build``, ``param_counts``: model config presets, config -> modules, parameter tables (ref §12-§15).
* ``inception``: the TF-Inception feature detector used by FID and instance selection (ref §6.2, §7.2).
* ``rng``: random draws from a generator on any device, moved to the tensors' device (ref §5.4).
* ``checkpoints``: a checkpoint's model checked (stored config, G_ema against a meta build); ``snapshots``: which
  snapshots a ``CKPT`` designates and loading one as a ready generator (eval, export) (ref §8.1, §10).
"""
