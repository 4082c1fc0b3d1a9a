"""End to end: headless Chromium drives the search page served from a real (tiny) index.

Needs Debian's ``chromium`` and ``chromium-driver`` packages and ``selenium`` (test-only). Without
them the test is skipped locally; when the ``CI`` environment variable is set it fails instead.
"""

import os
import shutil
import threading

import numpy as np
import pytest
from PIL import Image

COLOURS = {"red": (220, 20, 30), "blue": (20, 40, 220), "green": (30, 200, 40)}
STONES = {"red": "ruby", "blue": "sapphire", "green": "emerald"}


def _require(what: str, available: bool):
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is required in CI (apt-get install -y chromium chromium-driver; pip install selenium)")
    pytest.skip(f"{what} is not installed")


def _find(names):
    return next((path for path in map(shutil.which, names) if path), None)


class ColourCaptioner:
    """Captions an image by its dominant colour: enough to make search results meaningful."""

    def caption(self, images, beam_width=1, **kwargs):
        from gemcaption.data.images import load_image

        out = []
        for image in images:
            pixels = np.asarray(load_image(image), np.float32).reshape(-1, 3).mean(axis=0)
            name = min(COLOURS, key=lambda c: np.sum((np.array(COLOURS[c]) - pixels) ** 2))
            out.append(f"a {name} {STONES[name]} in a silver ring")
        return out


@pytest.fixture
def served_index(tmp_path):
    """A real Retriever over six small images, served on 127.0.0.1 with an ephemeral port."""
    from werkzeug.serving import make_server

    from gemcaption.retrieval.retriever import Retriever
    from gemcaption.web import create_app

    images, captions = [], []
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        for i in range(2):
            pixels = np.clip(np.array(rgb) + rng.integers(-15, 15, (48, 48, 3)), 0, 255).astype(np.uint8)
            path = tmp_path / f"{name}{i}.png"
            Image.fromarray(pixels).save(path)
            images.append(str(path))
            captions.append([f"a {STONES[name]} ring"])
    query = tmp_path / "query.png"
    Image.new("RGB", (40, 40), COLOURS["blue"]).save(query)
    retriever = Retriever(ColourCaptioner(), progress=False).build(images, captions=captions)
    server = make_server("127.0.0.1", 0, create_app(retriever), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", query
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


@pytest.fixture
def browser(tmp_path):
    chromium = _find(["chromium", "chromium-browser", "google-chrome"])
    driver_path = _find(["chromedriver"])
    _require("chromium", chromium is not None)
    _require("chromedriver", driver_path is not None)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _require("selenium", False)
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _result_captions(driver, wait, expected_word):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def captions(d):
        try:  # the grid is re-rendered by each search: an element read mid-render goes stale
            texts = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#results .result .caption")]
        except StaleElementReferenceException:
            return False
        return texts if texts and expected_word in texts[0] else False

    return wait.until(captions)


def test_upload_image_then_type_text_then_click_a_result(served_index, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    url, query_image = served_index
    wait = WebDriverWait(browser, 30)
    browser.get(url)
    assert "6 indexed images" in browser.find_element(By.TAG_NAME, "header").text

    browser.find_element(By.ID, "image-input").send_keys(str(query_image))
    captions = _result_captions(browser, wait, "blue")
    assert captions[0] == "a blue sapphire in a silver ring"
    assert "Generated caption" in browser.find_element(By.ID, "query").text
    assert all(
        img.get_attribute("src").split("/images/")[1].isdigit()
        for img in browser.find_elements(By.CSS_SELECTOR, "#results .result img")
    )
    assert wait.until(
        lambda d: d.execute_script(  # every result image arrives from /images/<id>
            "return Array.from(document.querySelectorAll('#results img')).every(i => i.complete && i.naturalWidth > 0)"
        )
    )

    box = browser.find_element(By.ID, "text-input")
    box.send_keys("emerald")
    browser.find_element(By.CSS_SELECTOR, "#text-form button").click()
    captions = _result_captions(browser, wait, "green")
    assert captions[:2] == ["a green emerald in a silver ring"] * 2
    scores = [float(e.text) for e in browser.find_elements(By.CSS_SELECTOR, "#results .score")]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]

    cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    red_card = next(c for c in cards if "red" in c.find_element(By.CSS_SELECTOR, ".caption").text)
    red_card.click()
    captions = _result_captions(browser, wait, "red")
    assert captions[0] == "a red ruby in a silver ring"

    browser.find_element(By.ID, "text-input").clear()
    browser.find_element(By.CSS_SELECTOR, "#text-form button").click()
    assert "Type some words" in browser.find_element(By.ID, "status").text
