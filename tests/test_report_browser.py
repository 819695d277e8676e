"""The HTML report in a real browser: headless Chromium loads it offline, lays out the tables and
decodes every embedded figure; a screenshot shows the page is not blank.

Skipped when /usr/bin/chromium (Debian package `chromium`) is absent.
"""

from __future__ import annotations

import base64
import html as html_lib
import json
import re
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from prorl_eval.cli.report import report_command
from tests.conftest import REPORT_RUNS as RUNS
from tests.conftest import write_report_run as write_run

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WIDTH, HEIGHT = 1200, 2000

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs headless Chromium at /usr/bin/chromium (apt-get install chromium)",
    ),
]

# Appended to a copy of the page (the report itself has no scripts): after load, write what the
# browser decoded into the DOM, which --dump-dom then prints.
PROBE = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.map.call(document.images, function (img) {
    return {w: img.naturalWidth, h: img.naturalHeight, complete: img.complete,
            shown: img.getBoundingClientRect().width, data: img.src.indexOf("data:") === 0};
  });
  var tables = Array.prototype.map.call(document.querySelectorAll("table.results"),
    function (t) { return {rows: t.rows.length, width: t.getBoundingClientRect().width}; });
  var probe = document.createElement("pre");
  probe.id = "probe";
  probe.textContent = JSON.stringify({images: images, tables: tables,
                                      resources: performance.getEntriesByType("resource").length});
  document.body.appendChild(probe);
});
</script>
"""


def chromium(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    runs = [write_run(root / "runs" / name, spec) for name, spec in RUNS.items()]
    out = root / "report"
    report_command([str(p) for p in runs], out, None, 1, str(runs[0]))
    return out


def test_browser_decodes_every_figure_and_lays_out_tables(report, tmp_path):
    page = tmp_path / "probe.html"
    page.write_text((report / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    probe = run_probe(tmp_path, page)
    figures = sorted((report / "figures").glob("*.png"))
    assert len(probe["images"]) == len(figures) == 4
    sizes = sorted(png_size(p.read_bytes()) for p in figures)
    assert sorted((i["w"], i["h"]) for i in probe["images"]) == sizes  # decoded, full size
    assert all(i["complete"] and i["data"] and i["shown"] > 100 for i in probe["images"])
    assert [t["rows"] for t in probe["tables"]] == [4, 2, 2, 5]  # header + rows (+ average)
    assert all(t["width"] > 200 for t in probe["tables"])
    assert probe["resources"] == 0  # nothing fetched: data URIs are not resource loads


def run_probe(tmp_path: Path, page: Path) -> dict:
    result = chromium(tmp_path, page, "--virtual-time-budget=10000", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="probe">(.*?)</pre>', result.stdout, re.S)
    assert found, "the probe did not run: " + result.stdout[-500:]
    return json.loads(html_lib.unescape(found.group(1)))


def test_probe_sees_a_broken_image(report, tmp_path):
    """The probe can fail: a corrupted data URI decodes to naturalWidth 0."""
    good = base64.b64encode(next((report / "figures").glob("*.png")).read_bytes()).decode()
    bad = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20).decode()
    page = tmp_path / "broken.html"
    images = "".join(f'<img src="data:image/png;base64,{b}">' for b in (good, bad))
    page.write_text(f"<!DOCTYPE html><html><body>{images}{PROBE}</body></html>")
    widths = [image["w"] for image in run_probe(tmp_path, page)["images"]]
    assert widths[0] > 100 and widths[1] == 0


def test_dom_has_the_tables(report, tmp_path):
    result = chromium(tmp_path, report / "report.html", "--dump-dom")
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    assert dom.count('<table class="results"') == 4 and dom.count("<img") == 4
    assert "gym:basic_arithmetic" in dom and '<td class="best">42.5 ± ' in dom


def test_screenshot_is_not_blank(report, tmp_path):
    from PIL import Image

    shot = tmp_path / "report.png"
    result = chromium(
        tmp_path,
        report / "report.html",
        f"--screenshot={shot}",
        f"--window-size={WIDTH},{HEIGHT}",
        "--hide-scrollbars",
    )
    assert result.returncode == 0 and shot.is_file(), result.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (WIDTH, HEIGHT)
    rgb = np.asarray(image).astype(int)  # (H, W, 3)
    non_white = (rgb.min(axis=2) < 235).mean()
    colours = len(np.unique(rgb.reshape(-1, 3), axis=0))
    assert non_white > 0.05  # text, rules and the first figure
    assert colours > 100  # anti-aliased text and plotted colours, not a flat page
    # The figure in the lower half has coloured lines and bands (C0 blue etc.).
    lower = rgb[HEIGHT // 2 :]
    assert ((lower.max(axis=2) - lower.min(axis=2)) > 100).mean() > 0.001
