"""The wheel setup.cfg builds holds the product's packages and no development module."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("config", "models", "services", "providers", "tasks", "workers", "broker", "telemetry")
DEVELOPMENT = ("devtools", "tests", "bench")
# What a checkout holds besides its source: none of it goes into a build.
NOT_SOURCE = (".git", ".venv", "var", "build", "*.egg-info", "__pycache__", ".*_cache")


def _wheel_names(tmp_path: Path) -> set[str]:
    """The paths inside the wheel built from a copy of the whole checkout."""
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE), symlinks=True)
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return set(zipfile.ZipFile(next(wheels.glob("*.whl"))).namelist())


def test_the_wheel_holds_the_product_and_no_development_module(tmp_path: Path) -> None:
    # The copy holds devtools/, tests/ and bench/: only setup.cfg keeps them out.
    assert all((ROOT / name / "__init__.py").is_file() for name in DEVELOPMENT)
    names = _wheel_names(tmp_path)
    packaged = {name.split("/")[0] for name in names if name.endswith(".py")}
    assert {f"{package}/__init__.py" for package in PRODUCT} <= names
    assert packaged == set(PRODUCT)
    assert not [name for name in names if name.split("/")[0] in DEVELOPMENT]
