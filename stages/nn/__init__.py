"""The 3DGP networks (3DGP ref §1-§4).

Import from the modules directly; this package file imports nothing, so importing one module never pulls in the
others (nor torch).

* ``layers``: equalized-lr FC and conv layers, ``normalize_2nd_moment`` (ref §1.1).
* ``mapping``: the mapping network z, c -> ws with w_avg tracking and truncation (ref §1.1, §8.2).
* ``synthesis``: modulated convs and the StyleGAN2 "skip" tri-plane synthesis network (ref §1.2).
* ``triplane``: tri-plane sampling and the decoding MLP (ref §1.3).
* ``generator``: the full generator: mapping + tri-plane + renderer + camera and depth adaptors (ref §1.8).
* ``rays``, ``render``, ``camera``, ``depth_adaptor``: rays, volume rendering, camera model and adaptor, depth adaptor.
* ``discriminator``, ``config``, ``build``: the discriminator, the model config and config -> modules.
"""
