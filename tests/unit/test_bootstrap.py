"""``.ci/bootstrap``: on a machine without chromium it installs it or stops with one line."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HIDDEN = ("chromium", "chromium-browser", "apt-get")


def _path_without(hidden: tuple[str, ...], into: Path) -> str:
    """A PATH of one folder linking every program of the real PATH but ``hidden``."""
    into.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        if not Path(folder).is_dir():
            continue
        for program in Path(folder).iterdir():
            target = into / program.name
            if program.name not in hidden and not target.exists():
                target.symlink_to(program)
    return str(into)


def test_without_chromium_or_a_way_to_install_it_it_stops_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": _path_without(HIDDEN, tmp_path / "bin")}
    result = subprocess.run(
        [str(ROOT / ".ci" / "bootstrap")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("make test needs chromium: install with 'sudo apt-get install")


def test_make_test_runs_the_bootstrap_before_anything_and_ci_runs_make_test() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert recipe.index(".ci/bootstrap") < recipe.index("lint typecheck") < recipe.index("pytest")
    assert (ROOT / ".ci" / "run").read_text().rstrip().endswith("exec make test")
