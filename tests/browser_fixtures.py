"""A headless Debian chromium under Playwright, a folder for each test's screenshots, and the
accessibility check of a page by axe-core (installed from tests/browser/package-lock.json)."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
AXE_SCRIPT = Path(__file__).parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
# What the check refuses; moderate and minor findings are left to judgement.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})


@contextmanager
def chromium() -> Iterator[Browser]:
    """The browser, for as long as the block runs."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install chromium (make test does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless=new", "--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def artifacts(request: pytest.FixtureRequest) -> Path:
    folder = Path(os.environ.get("TEST_ARTIFACTS", "test-artifacts")) / request.node.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@functools.cache
def _axe_source() -> str:
    if not AXE_SCRIPT.exists():
        pytest.fail("axe-core is not installed: run .ci/bootstrap (make test does)")
    return AXE_SCRIPT.read_text()


def axe_run(page: Page) -> dict[str, Any]:
    """axe-core's results for the page as it stands: ``violations`` and ``incomplete`` (what
    it could not decide alone, such as contrast over an image), each rule with its elements.

    The console's strict Content-Security-Policy (``default-src 'self'``) blocks the script
    injected here, so check pages in a context opened with ``bypass_csp=True``.
    """
    page.add_script_tag(content=_axe_source())
    results: dict[str, Any] = page.evaluate(
        "() => axe.run(document, {resultTypes: ['violations', 'incomplete']})"
    )
    return results


def blocking(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The serious and critical ones."""
    return [v for v in violations if v["impact"] in BLOCKING_IMPACTS]


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """The serious and critical axe-core violations of the page as it stands."""
    return blocking(axe_run(page)["violations"])


def describe_violations(violations: list[dict[str, Any]]) -> str:
    """One line per rule (id, impact, what it asks, its help page), then the elements at fault."""
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation['impact']}): {violation['help']}"
            f" - {violation['helpUrl']}"
        )
        for node in violation["nodes"]:
            target = " >>> ".join(map(str, node["target"]))
            lines.append(f"    {target}: {' '.join(node['html'].split())[:160]}")
    return "\n".join(lines)
