"""Fixtures for the train tests: a tiny LMDB dataset (``tests/helpers/toy_data.py``)."""
from __future__ import annotations

import pytest

from tests.helpers.toy_data import make_toy_dataset


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory):
    return str(make_toy_dataset(tmp_path_factory.mktemp("data") / "toy"))


@pytest.fixture(scope="session")
def toy_dataset_nodepth(tmp_path_factory):
    return str(make_toy_dataset(tmp_path_factory.mktemp("data") / "toy_nodepth", depth=False, emb_dim=0))


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """2 shared cores: intra-op threads only add contention at these sizes."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
