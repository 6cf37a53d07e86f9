"""The history's site in a real browser: every page opened from a file:// URL in headless
Chromium shows no console error and every image decoded, and a screenshot of each page is
kept (CI collects them). A parser can say that a link's file exists; only a browser says that
the page it opens renders.

Chromium is driven by Selenium through Debian's chromium-driver, which is built from the same
source package as its chromium, so the driver always matches the browser and nothing is
downloaded. The check is shown to fail: a missing image, an image that does not decode and a
script error are each reported.

Without chromium, chromedriver or selenium the tests skip, saying which is missing, unless
PYTEST_ASCEND_REQUIRE_BROWSER=1 (CI sets it), where they fail instead.
"""

import base64
import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from conftest import skip_unless_required
from test_dashboard import synthetic_history

from pytest_ascend.history.dashboard import write_dashboard

# Read at import: tests/plugin/conftest.py clears PYTEST_ASCEND_* before each test.
SCREENSHOTS = os.environ.get("PYTEST_ASCEND_SCREENSHOTS")
WIDTH = 1280
# Images that did not load, or loaded and did not decode (a file that is not a PNG): both
# leave naturalWidth 0. The page's load event, which driver.get waits for, follows every image.
NOT_SHOWN = ("return Array.from(document.images)"
             ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src'))")


def missing_browser():
    """What is missing to run Chromium here, or None."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install -e '.[test]')"
    absent = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    if absent:
        return (f"{' and '.join(absent)} not on PATH (Debian: apt-get install chromium "
                f"chromium-driver)")
    return None


@pytest.fixture(scope="module")
def browser():
    skip_unless_required(missing_browser(), "PYTEST_ASCEND_REQUIRE_BROWSER")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    # --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", f"--window-size={WIDTH},900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path given: Selenium Manager, which would look for one online, is not run.
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    yield driver
    driver.quit()


def problems(driver, page: Path) -> list:
    """Console errors (script errors, resources that failed to load) and images not shown."""
    driver.get(page.as_uri())
    found = [f"console: {entry['message']}" for entry in driver.get_log("browser")
             if entry["level"] == "SEVERE"]
    return found + [f"image not shown: {src}" for src in driver.execute_script(NOT_SHOWN)]


def screenshot(driver, path: Path) -> None:
    """The whole page, not only the window: a box page runs long."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def test_every_page_of_the_site_renders_clean_in_chromium(browser, tmp_path):
    pages = write_dashboard(synthetic_history(), tmp_path / "site",
                            ["test_x in run-007.json set aside: throttled"])
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    found, images = {}, 0
    for page in pages:
        found[page.name] = problems(browser, page)
        images += browser.execute_script("return document.images.length")
        screenshot(browser, folder / f"dashboard-{page.stem}.png")
        assert (folder / f"dashboard-{page.stem}.png").read_bytes()[:4] == b"\x89PNG"
    assert found == {page.name: [] for page in pages}
    assert images >= 1  # the check looked at a chart, not only at pages without one


def test_a_missing_image_a_broken_image_and_a_script_error_are_reported(browser, tmp_path):
    (tmp_path / "garbage.png").write_bytes(b"not a PNG at all")
    pages = {
        "missing": "<img src='charts/absent.png' alt='gone'>",
        "undecodable": "<img src='garbage.png' alt='garbage'>",
        "script": "<p>text</p><script>throw new Error('planted failure')</script>",
    }
    found = {}
    for name, body in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(f"<!doctype html><html><head><meta charset='utf-8'>"
                        f"<link rel='icon' href='data:,'><title>{name}</title></head>"
                        f"<body>{body}</body></html>")
        found[name] = problems(browser, path)
    assert "image not shown: charts/absent.png" in found["missing"]
    assert any("absent.png" in p and "ERR_FILE_NOT_FOUND" in p for p in found["missing"])
    assert found["undecodable"] == ["image not shown: garbage.png"]
    assert [p for p in found["script"] if "planted failure" in p] == found["script"] != []
