"""The report of the health archive (``health_archive``: three publishers, four days, two broken on the last),
written by ``news-archive report`` and opened in a real headless browser: Debian's chromium, driven by Playwright.

The screenshot is kept as a test artifact: ``test-artifacts/report.png`` in the checkout (README's
``docs/report.png`` is a copy of it).
"""

from __future__ import annotations

import shutil

import numpy
import pytest
from PIL import Image

from conftest import HEALTH_HOSTS, REPO, ArchiveTarget, in_ci, news_archive
from pipelines.report import PLOTS, plots_in

ARTIFACTS = REPO / "test-artifacts"


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if in_ci():  # .ci/run installs Debian's chromium: its absence is a failure there
            raise AssertionError("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def report(health_archive, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    target = ArchiveTarget(uri=str(health_archive.archive), env={}, options={}, store=None)
    path = tmp / "report.html"
    written = news_archive(target, tmp, "report", str(health_archive.archive), "-o", str(path))
    assert written.returncode == 0, written.stderr[-2000:]
    assert written.stdout == f"report written to {path}: 3 site(s), 4 run(s), 3 alert(s)\n"
    return path


@pytest.mark.needs_corpus
def test_the_report_is_one_self_contained_file(report):
    text = report.read_text(encoding="utf-8")
    assert plots_in(text) == list(PLOTS)
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert " src=" not in text and "url(http" not in text  # nothing to fetch: no image, font or stylesheet
    assert not list(report.parent.glob(".report.html*"))  # written whole, no temporary left


@pytest.mark.needs_corpus
def test_the_report_in_a_headless_browser(report):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "report.png"
    screenshot.unlink(missing_ok=True)
    console, errors, requests = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda message: console.append((message.type, message.text)))
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: requests.append(request.url))
            page.goto(report.as_uri(), wait_until="load")
            for plot in PLOTS:  # every plot drawn, with a size on the page
                box = page.locator(f"figure#{plot} > svg").bounding_box()
                assert box is not None and box["width"] > 500 and box["height"] > 100, (plot, box)
                assert page.locator(f"figure#{plot} svg path").count() > 10, plot
            alerts = page.locator("#alerts").inner_text()
            assert "Health: 2 site(s) flagged" in alerts
            for host in (HEALTH_HOSTS["layout"], HEALTH_HOSTS["sitemap"]):
                assert host in alerts
            assert HEALTH_HOSTS["steady"] not in alerts
            assert page.locator("#runs tr").count() == 1 + 4  # the header and the four runs
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    assert console == [] and errors == []
    assert requests == [report.as_uri()]  # the file itself, nothing else
    with Image.open(screenshot) as image:
        assert image.format == "PNG"
        assert image.width == 1200 and image.height > 2000  # the whole page: six plots and two tables
        pixels = numpy.asarray(image.convert("RGB")).reshape(-1, 3)
    drawn = int((pixels != 255).any(axis=1).sum())
    assert drawn > 0.05 * len(pixels)  # drawn, not blank
    assert (pixels == (214, 39, 40)).all(axis=1).any()  # the flag colour: a flagged run is marked
