"""Linters run as tests (as in ros2/examples): the tree is ruff-clean."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ruff_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    proc = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_core_never_imports_rclpy():
    offenders = [
        str(p.relative_to(ROOT))
        for p in (ROOT / "spvla_ros" / "core").rglob("*.py")
        if "import rclpy" in p.read_text() or "from rclpy" in p.read_text()
    ]
    assert offenders == []
