"""Everything in 3dgp that computes.

One package per stage (``prep``, ``train``, ``eval``, ``export``) plus the shared packages ``nn`` (networks),
``ops`` (custom ops with a pure-PyTorch reference), ``data`` (the LMDB dataset format) and ``common``
(errors, checkpoints, seeding, progress). Imports flow one way: stages -> {nn, ops, data, common}; stage
packages never import each other. Importing this package does not import torch.
"""
