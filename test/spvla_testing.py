"""Helpers importable by every test module (``pythonpath = ["test"]`` in pyproject.toml).

Import these instead of ``from conftest import ...``: several conftest.py files exist (test/, test/nodes/),
and a plain ``import conftest`` gets whichever was imported first.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SPVLA_SHARED", REPO_ROOT.parent / "shared"))


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared, or skip the calling test with the reason when it is absent."""
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(f"needs shared/{relative} (not found at {path}); shared/ is a development-only resource")
    return path
