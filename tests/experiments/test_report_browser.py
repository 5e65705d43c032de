"""The HTML report in a real headless browser (Debian's chromium, installed by ``make install-dev``):
at 1280 px wide (and at 800) nothing scrolls sideways, neither the page nor a figure in it, every figure loads, and the console has no errors.

The check runs on a copy of the report with a small script added at the top of the page: it records
console errors and uncaught exceptions, and on load writes what it measured into the DOM, which
``chromium --dump-dom`` prints.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from experiments.reporting import report
from tests.experiments.helpers import fabricate_sweep

BROWSERS = ("chromium", "chromium-browser", "google-chrome")

PROBE = """<script>
window.__errors = [];
const original = console.error;
console.error = function (...args) { window.__errors.push(args.join(" ")); original.apply(console, args); };
window.addEventListener("error", (e) => window.__errors.push(String(e.message || e)), true);
window.addEventListener("load", () => {
  const doc = document.documentElement;
  const images = Array.from(document.images);
  const wide = Array.from(document.querySelectorAll("body *"))
    .filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
    .map((el) => el.tagName + "." + el.className);
  const result = {
    scrollWidth: doc.scrollWidth, clientWidth: doc.clientWidth,
    images: images.length,
    broken: images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.alt),
    wide: wide.slice(0, 5), errors: window.__errors,
  };
  const out = document.createElement("pre");
  out.id = "probe-result";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>"""


def _browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def browser() -> str:
    path = _browser()
    if path is None:
        pytest.skip(
            "no headless browser: Debian's chromium is not installed (make install-dev runs apt-get install -y chromium)"
        )
    return path


@pytest.mark.slow
@pytest.mark.parametrize("width", [1280, 800])  # the 1280 px, and a narrow window
def test_the_report_fits_the_window_loads_every_figure_and_logs_no_errors(tmp_path, browser, width):
    sweep = fabricate_sweep(tmp_path / "sweep")
    page = report.write_report(sweep).read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},900",
            "--virtual-time-budget=10000",
            "--dump-dom",
            probed.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    match = re.search(r'<pre id="probe-result">(.*?)</pre>', result.stdout, re.S)
    assert match, f"the page did not finish loading: {result.stderr[-2000:]}"
    measured = json.loads(match[1].replace("&quot;", '"').replace("&amp;", "&"))
    assert measured["images"] == 7, measured
    assert measured["broken"] == [], measured
    assert measured["errors"] == [], measured
    assert measured["scrollWidth"] <= measured["clientWidth"], measured
    assert measured["wide"] == [], measured  # no element (the tree figure, a table) beyond the window
