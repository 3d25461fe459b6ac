"""Shared test setup: offline model loading, Ray CLI auth, and the markers' skip rules."""

from __future__ import annotations

import os

import pytest

from tests.postgres import PostgresServer, require_bin_dir

# No model hub is reachable: packaged weights only (timm/transformers fail fast instead of retrying).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "token")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs CUDA (runs on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the whole session (``tests.postgres``): ``postgres.create_database()``
    returns the URL of a fresh database. Skips without PostgreSQL (fails under MODERA_REQUIRE_SYSTEM_DEPS=1)."""
    with PostgresServer(require_bin_dir()) as server:
        yield server
