"""Shared test configuration.

Tests marked ``model`` use the real embedded Qwen2.5-Coder-0.5B model through llama.cpp. Without the
``local`` extra they are skipped locally, but in CI (CI=true) a missing engine fails the run: a green
CI must mean the real model was exercised.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("AUTOTQA_SHARED_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    needs_model = [item for item in items if "model" in item.keywords]
    if not needs_model or importlib.util.find_spec("llama_cpp") is not None:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        raise pytest.UsageError("CI=true but llama-cpp-python is not installed: install the `local` extra")
    skip = pytest.mark.skip(reason="llama-cpp-python not installed (pip install -e '.[local]')")
    for item in needs_model:
        item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The read-only benchmark training data beside the repository (never copied into it)."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture(scope="session")
def spider_dir(shared_datasets: Path) -> Path:
    return shared_datasets / "spider-train"


@pytest.fixture(scope="session")
def wtq_dir(shared_datasets: Path) -> Path:
    return shared_datasets / "wtq-train"
