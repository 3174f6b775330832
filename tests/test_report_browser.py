"""The HTML report opens in a real browser: every image loads, no console errors."""

import shutil

import pytest

import bayesgmm as bg

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def chromium():
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("Debian's chromium is not installed and could not be installed "
                    "(`make test` tries apt-get install chromium); browser check skipped")
    return path


def test_report_renders_in_headless_chromium(chromium, tmp_path, faithful):
    from playwright.sync_api import sync_playwright

    cmp = bg.compare_k(faithful, range(1, 4), methods="em", progressbar=False)
    path = bg.report(cmp, tmp_path / "report.html")
    errors = []
    with sync_playwright() as play:
        browser = play.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page()
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda err: errors.append(str(err)))
        page.goto(path.as_uri())
        page.wait_for_load_state("load")
        total, loaded = page.evaluate(
            "() => [document.images.length, Array.from(document.images)"
            ".filter(img => img.complete && img.naturalWidth > 0).length]")
        title = page.title()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert errors == []
    assert total == 3 and loaded == total
    assert title == "bayesgmm report"
    assert (tmp_path / "report.png").stat().st_size > 10_000
