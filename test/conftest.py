"""Shared test plumbing: ../shared lookup with clean skips, and per-session ROS 2 isolation."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from spvla_testing import shared_path

# DDS isolation for every test process (and the processes they start): this host only, and a domain id
# unique to this pytest session so parallel sessions on one machine never see each other.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))


@pytest.fixture
def bridge_npz() -> Path:
    """Real BridgeData actions (25 episodes x 10 steps, 5 Hz)."""
    return shared_path("data/bridge_debug_25ep.npz")
