"""The ament install layout that ``ros2 launch spvla ...`` and ``ros2 run spvla ...`` need (issue 17).

``make setup`` lays spvla out in ``.venv`` with tools/ament_layout.py, from setup.py's ``data_files`` and
``console_scripts``; CMakeLists.txt installs the same on a ROS install (colcon).

Regressions pinned:
* ``pip install -e .`` leaving the prefix without the ament index entry, ``share/spvla/{launch,config}``
  or ``lib/spvla/<executable>`` (``ros2 launch``: "package 'spvla' not found" / "executable not found");
* a symlinked share directory (``ros2 launch`` walks it with ``os.walk``, which does not enter it);
* a launch or config file edited, added or removed in the checkout but not in the installed share;
* setup.py and CMakeLists.txt installing different executables or share directories.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PREFIX = Path(sys.prefix)


def _tool():
    spec = importlib.util.spec_from_file_location("ament_layout", ROOT / "tools" / "ament_layout.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_prefix(tmp_path: Path, tool) -> Path:
    prefix = tmp_path / "prefix"
    (prefix / "bin").mkdir(parents=True)
    for entry in tool.setup_kwargs()["entry_points"]["console_scripts"]:
        exe = prefix / "bin" / entry.split("=", 1)[0].strip()
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    return prefix


def test_layout_is_written_from_setup_py_with_real_share_directories(tmp_path):
    tool = _tool()
    prefix = _fake_prefix(tmp_path, tool)
    assert tool.main([str(prefix)]) == 0
    share = prefix / "share" / "spvla"
    assert (prefix / "share/ament_index/resource_index/packages/spvla").is_file()
    assert (share / "package.xml").read_text() == (ROOT / "package.xml").read_text()
    for sub, pattern in (("launch", "*.py"), ("config", "*")):
        directory = share / sub
        assert directory.is_dir() and not directory.is_symlink()
        assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in (ROOT / sub).glob(pattern))
        names = [name for _, _, files in os.walk(share) for name in files]  # what ros2 launch sees
        assert all(p.name in names for p in (ROOT / sub).glob(pattern))
    launch_file = share / "launch" / "bringup.launch.py"
    assert launch_file.resolve() == (ROOT / "launch" / "bringup.launch.py").resolve()  # edits reach it at once
    for exe in ("policy_node", "scheduler_node", "safety_node", "gripper_node", "spvla-bag"):
        path = prefix / "lib" / "spvla" / exe
        assert os.access(path, os.X_OK) and path.resolve() == (prefix / "bin" / exe).resolve()
    assert tool.differences(prefix) == []


def test_check_reports_stale_and_missing_entries_and_install_repairs_them(tmp_path):
    tool = _tool()
    prefix = _fake_prefix(tmp_path, tool)
    tool.install(prefix)
    stale = prefix / "share" / "spvla" / "config" / "removed_in_checkout.yaml"
    stale.write_text("{}\n")
    (prefix / "share" / "spvla" / "launch" / "bringup.launch.py").unlink()
    problems = tool.differences(prefix)
    assert any("removed_in_checkout.yaml" in p and "stale" in p for p in problems), problems
    assert any("bringup.launch.py" in p for p in problems), problems
    assert tool.main([str(prefix), "--check"]) == 1
    tool.install(prefix)
    assert tool.differences(prefix) == [] and not stale.exists()


def test_this_venv_has_the_layout_of_this_checkout():
    if PREFIX.resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"the venv {PREFIX} is not this checkout's .venv (`make setup` lays out its own)")
    problems = _tool().differences(PREFIX)
    assert problems == [], "run `make setup` (tools/ament_layout.py):\n" + "\n".join(problems)


def test_ament_index_finds_the_package_and_its_executables(monkeypatch):
    if PREFIX.resolve() != (ROOT / ".venv").resolve():
        pytest.skip(f"the venv {PREFIX} is not this checkout's .venv")
    from ament_index_python.packages import get_package_prefix, get_package_share_directory

    monkeypatch.setenv("AMENT_PREFIX_PATH", str(PREFIX))
    assert Path(get_package_share_directory("spvla")) == PREFIX / "share" / "spvla"
    lib = Path(get_package_prefix("spvla")) / "lib" / "spvla"
    found = {p.name for p in lib.iterdir() if os.access(p, os.X_OK)}  # as ros2pkg / launch_ros look
    assert {"policy_node", "scheduler_node", "safety_node", "gripper_node", "spvla-bag"} <= found


def test_cmake_installs_the_same_executables_and_share_directories_as_setup_py():
    tool = _tool()
    kwargs = tool.setup_kwargs()
    entries = {e.split("=", 1)[0].strip() for e in kwargs["entry_points"]["console_scripts"]}
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert set(re.findall(r'"([\w-]+)=[\w.]+:\w+"', cmake)) == entries
    assert "DESTINATION lib/${PROJECT_NAME}" in cmake
    shared = {Path(dest).name for dest, _ in kwargs["data_files"] if dest.startswith("share/spvla/")}
    installed = re.search(r"install\(DIRECTORY ([\w ]+) DESTINATION share/\$\{PROJECT_NAME\}\)", cmake)
    assert installed and set(installed.group(1).split()) == shared


def test_an_installed_package_finds_its_config_in_the_share_directory(tmp_path):
    """colcon (CMakeLists.txt) and a non-editable pip install put the package in
    ``<prefix>/lib/pythonX.Y/site-packages`` and config/ in ``<prefix>/share/spvla/config``: the core found
    config/ only next to a source checkout, and the scheduler node died on a ROS install
    (FileNotFoundError: .../site-packages/config/scheduler.yaml)."""
    from spvla_ros.core.config_io import CONFIG_DIR, find_config_dir

    assert CONFIG_DIR == ROOT / "config"  # a checkout: its own config/
    prefix = tmp_path / "install"
    module = prefix / "lib" / "python3.12" / "site-packages" / "spvla_ros" / "core" / "config_io.py"
    module.parent.mkdir(parents=True)
    (prefix / "share" / "spvla" / "config").mkdir(parents=True)
    assert find_config_dir(module) == prefix / "share" / "spvla" / "config"
