"""Lay the spvla package out in an install prefix the way ament does, for ``ros2 launch`` / ``ros2 run``.

``pip install -e .`` installs none of setup.py's ``data_files`` and puts the console entries in ``bin/``,
but ``ros2 launch spvla bringup.launch.py`` looks the package up in the ament index and launch_ros
finds node executables in ``lib/spvla/``. ``make setup`` runs this for ``.venv`` (mk/ros2.mk):

    python tools/ament_layout.py .venv            # write the layout (idempotent, removes stale entries)
    python tools/ament_layout.py .venv --check    # exit 1 and list the differences

What it writes under PREFIX, all read from setup.py (its ``data_files`` and ``console_scripts``, the one
list of them):

* each ``data_files`` entry under ``share/``: ``package.xml`` and the ament index marker are copied; the
  files of ``launch/`` and ``config/`` become one symlink per file in a real directory (``ros2 launch``
  walks the share with ``os.walk``, which does not enter a symlinked directory). Edits of a file in the
  checkout reach the installed share at once (as ``colcon build --symlink-install``); a file added to or
  removed from ``launch/`` or ``config/`` is synced by the next ``make`` (the directories are prerequisites
  of its stamp), and ``test/launch/test_ament_layout.py`` fails until then.
* ``lib/spvla/<entry>``: a symlink to ``bin/<entry>`` for every console entry (the venv's own Python).

On a ROS install, ``colcon build`` does the same through CMakeLists.txt (SPVLA_INSTALL_PYTHON=ON).
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("package.xml", "resource/")
"""Sources installed as copies (CMake's install of the interfaces writes the same files into the prefix;
writing through a symlink into the checkout must never happen)."""


def setup_kwargs() -> dict:
    """The keyword arguments setup.py passes to ``setup()`` (setup.py is run with ``setup`` replaced)."""
    captured: dict = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # setup.py globs relative paths
    try:
        with mock.patch("setuptools.setup", side_effect=lambda **kw: captured.update(kw)):
            runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        os.chdir(cwd)
    return captured


def expected_layout(prefix: Path) -> dict[Path, tuple[str, Path]]:
    """Installed path -> (``"copy"`` | ``"link"``, source path) for every entry of the layout."""
    kwargs = setup_kwargs()
    package = kwargs["name"]
    out: dict[Path, tuple[str, Path]] = {}
    for dest, files in kwargs["data_files"]:
        for rel in files:
            kind = "copy" if rel.startswith(COPIED) else "link"
            out[prefix / dest / Path(rel).name] = (kind, ROOT / rel)
    for entry in kwargs["entry_points"]["console_scripts"]:
        name = entry.split("=", 1)[0].strip()
        out[prefix / "lib" / package / name] = ("link", prefix / "bin" / name)
    return out


def managed_dirs(layout: dict[Path, tuple[str, Path]]) -> set[Path]:
    """Directories whose every entry belongs to the layout (stale entries there are removed)."""
    return {path.parent for path, (kind, _) in layout.items() if kind == "link"}


def differences(prefix: Path) -> list[str]:
    """What differs between the layout and ``prefix`` (empty when in step)."""
    layout = expected_layout(prefix)
    problems = []
    for path, (kind, source) in sorted(layout.items()):
        if kind == "link" and not (path.is_symlink() and path.resolve() == source.resolve()):
            problems.append(f"{path}: not a link to {source}")
        elif kind == "copy" and not (path.is_file() and path.read_bytes() == source.read_bytes()):
            problems.append(f"{path}: not a copy of {source}")
    for directory in sorted(managed_dirs(layout)):
        if directory.is_symlink():
            problems.append(f"{directory}: a symlinked directory (ros2 launch does not walk into it)")
        for entry in sorted(directory.iterdir()) if directory.is_dir() else []:
            if entry not in layout:
                problems.append(f"{entry}: not in setup.py (stale)")
    return problems


def install(prefix: Path) -> int:
    """Write the layout into ``prefix``; returns the number of entries."""
    layout = expected_layout(prefix)
    for directory in managed_dirs(layout):
        if directory.is_symlink():
            directory.unlink()
        directory.mkdir(parents=True, exist_ok=True)
        for entry in directory.iterdir():
            if entry not in layout:
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    for path, (kind, source) in layout.items():
        if not source.exists():
            raise SystemExit(f"ament_layout: {source} does not exist (for {path}); is the package installed?")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink() or path.exists():
            path.unlink()
        if kind == "copy":
            shutil.copyfile(source, path)
        else:
            path.symlink_to(os.path.relpath(source, path.parent))
    return len(layout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", type=Path, help="install prefix (the venv)")
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 on a difference")
    args = parser.parse_args(argv)
    prefix = args.prefix.resolve()
    if args.check:
        problems = differences(prefix)
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    n = install(prefix)
    print(f"ament layout of spvla in {prefix}: {n} entries")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
