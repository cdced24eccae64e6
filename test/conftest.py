"""Shared test plumbing: ../shared lookup with clean skips, and per-session ROS 2 isolation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SPVLA_SHARED", REPO_ROOT.parent / "shared"))

# DDS isolation for every test process (and the processes they start): this host only, and a domain id
# unique to this pytest session so parallel sessions on one machine never see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))


def shared_path(relative: str) -> Path:
    """Path of a file under ../shared, or skip the calling test with the reason when it is absent."""
    path = SHARED_DIR / relative
    if not path.exists():
        pytest.skip(f"needs shared/{relative} (not found at {path}); shared/ is a development-only resource")
    return path


@pytest.fixture
def bridge_npz() -> Path:
    """Real BridgeData actions (25 episodes x 10 steps, 5 Hz)."""
    return shared_path("data/bridge_debug_25ep.npz")
