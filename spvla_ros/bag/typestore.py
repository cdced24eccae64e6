"""The rosbags type store for spvla bags: ROS 2 kilted standard types plus ``spvla/msg/*`` from ``msg/``."""

from __future__ import annotations

import importlib
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "spvla"


def msg_dir() -> Path:
    """``msg/`` of the source checkout, else ``share/spvla/msg`` of the install (ament index)."""
    source = Path(__file__).resolve().parents[2] / "msg"
    if source.is_dir():
        return source
    from ament_index_python.packages import get_package_share_directory

    return Path(get_package_share_directory(PACKAGE)) / "msg"


def spvla_typestore() -> Typestore:
    """Kilted type store with every ``msg/*.msg`` of spvla registered (needed to write them to a bag)."""
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for path in sorted(msg_dir().glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    store.register(types)
    return store


def rclpy_type(msgtype: str) -> type:
    """``pkg/msg/Name`` -> the rclpy message class (imports ``pkg.msg``)."""
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
