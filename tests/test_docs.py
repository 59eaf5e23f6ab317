"""The built documentation site, opened in headless Chromium (Debian's ``chromium``;
`make docs-test` installs it, builds the site and runs this file).

For the index page and one API page: a screenshot is taken (kept in
``HTAF_DOCS_SCREENSHOTS`` when that names a folder), the rendered DOM has MathJax's output
for the page's formulas, and the browser logged no console error.
"""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SITE = pathlib.Path(os.environ.get("HTAF_DOCS_SITE", ROOT / "docs" / "_build" / "html"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (`make docs-test` installs Debian's chromium package)",
    ),
    pytest.mark.skipif(
        not (SITE / "index.html").is_file(),
        reason=f"the docs are not built ({SITE}/index.html missing: `make docs`)",
    ),
]


def _chromium(*args: str, tmp: pathlib.Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--virtual-time-budget=10000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _console_errors(stderr: str) -> list[str]:
    """Console messages of level ERROR (Chromium logs them as CONSOLE(...) lines), and
    resources that failed to load."""
    return [
        line
        for line in stderr.splitlines()
        if ("CONSOLE" in line and re.search(r":ERROR:|\"(Uncaught|Error)", line))
        or "net::ERR_FILE_NOT_FOUND" in line
    ]


@pytest.mark.parametrize("page", ["index.html", "api/core.html", "concepts.html"])
def test_page_renders_with_math_and_no_console_errors(page, tmp_path):
    url = (SITE / page).as_uri()
    dom = _chromium("--dump-dom", url, tmp=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<article" in html and "htaf-jax" in html, html[:500]
    if page != "index.html":  # pages with formulas: MathJax (2.7) replaced them by its output
        assert 'class="MathJax' in html, "MathJax did not render the page's math"
        assert "Math Processing Error" not in html
    assert not _console_errors(dom.stderr), _console_errors(dom.stderr)

    shot = tmp_path / (page.replace("/", "_") + ".png")
    result = _chromium(f"--screenshot={shot}", "--window-size=1280,1600", url, tmp=tmp_path)
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    assert shot.stat().st_size > 20_000, "the screenshot is (nearly) blank"
    keep = os.environ.get("HTAF_DOCS_SCREENSHOTS")
    if keep:
        pathlib.Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, keep)
