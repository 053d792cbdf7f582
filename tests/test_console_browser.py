"""The web console in a real headless browser (Debian's chromium through chromedriver):
sign in, search, watch a job run to completion, cancel another, read a failed job's error, the
repositories page; on a desktop and a phone-sized window.

Screenshots go to docs/ (the README shows them) and, when set, to $CODEBASE_MCP_ARTIFACTS (CI).
The browser and driver come from scripts/install_test_tools; without them the test skips.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from console_server import TOKEN, http_server
from fake_embedding_server import FakeEmbeddingServer
from reliability.support import service, wait_for_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
DOCS = Path(__file__).resolve().parents[1] / "docs"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")

webdriver = pytest.importorskip("selenium.webdriver")
if not (CHROMIUM and DRIVER):
    pytest.skip(
        "chromium and chromedriver are not installed (scripts/install_test_tools)", allow_module_level=True
    )

from selenium.webdriver.common.by import By  # noqa: E402

# What sticks out of a phone-sized window, for the failure message.
WIDE_ELEMENTS = """return [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > 391).slice(0, 5)
  .map(e => e.tagName + '.' + e.className + ' ' + Math.round(e.getBoundingClientRect().right))"""

SAMPLE = {
    "billing/invoice.py": '''"""Invoices."""


def compute_invoice_total(lines, tax_rate):
    """Sum the line amounts and apply the tax rate."""
    subtotal = sum(line.amount for line in lines)
    return subtotal * (1 + tax_rate)
''',
    "net/retry.go": """package net

import "time"

// RetryWithBackoff calls fn until it succeeds, doubling the wait each time.
func RetryWithBackoff(fn func() error, attempts int) error {
	wait := 100 * time.Millisecond
	var err error
	for i := 0; i < attempts; i++ {
		if err = fn(); err == nil {
			return nil
		}
		time.Sleep(wait)
		wait *= 2
	}
	return err
}
""",
}


def _browser(width: int, height: int, *, phone: bool = False) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    if phone:  # a desktop window cannot be narrower than about 500 px: emulate the device
        options.add_experimental_option(
            "mobileEmulation", {"deviceMetrics": {"width": width, "height": height, "pixelRatio": 2}}
        )
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=DRIVER))
    driver.set_page_load_timeout(180)
    return driver


def _until(what: str, condition: Callable[[], Any], timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the page is reloading, an element is being replaced
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _shot(driver: Any, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    driver.save_screenshot(str(DOCS / f"console-{name}.png"))
    if artefacts := os.environ.get("CODEBASE_MCP_ARTIFACTS"):
        Path(artefacts).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(artefacts) / f"console-{name}.png"))


@pytest.fixture
def slow_embeddings(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmbeddingServer]:
    with FakeEmbeddingServer() as server:
        for key, value in {
            "EMBEDDING_BACKEND": "ollama",
            "EMBEDDING_URL": server.url,
            "EMBEDDING_MODEL": "fake-embed",
            "EMBEDDING_DIMENSION": "32",
            "EMBEDDING_BATCH_SIZE": "4",
        }.items():
            monkeypatch.setenv(key, value)
        yield server


def test_search_watch_a_job_cancel_one_and_read_a_failure_in_the_browser(
    settings: Any, make_repo: Any, slow_embeddings: FakeEmbeddingServer
) -> None:
    repo: Path = make_repo(SAMPLE)
    svc = service()
    first = svc.start_indexing(str(repo))["job_id"]
    assert wait_for_status(svc, first, {"completed", "failed"}, timeout=180)["status"] == "completed"
    failed = svc.jobs.create(repo_path="/srv/gone", project_id="default")
    svc.jobs.mark_running(failed.id)
    reason = (
        "the indexer exited with code 1: FileNotFoundError: /srv/gone/src was removed while walking\n" * 3
    )
    svc.jobs.fail(failed.id, reason.strip())

    with http_server() as base:
        desktop = _browser(1280, 900)
        try:
            desktop.get(f"{base}/jobs")
            _until("the login form", lambda: desktop.find_element(By.NAME, "token"))
            desktop.find_element(By.NAME, "token").send_keys(TOKEN)
            desktop.find_element(By.CSS_SELECTOR, "form.login button").click()
            _until("the jobs page", lambda: desktop.find_element(By.ID, "jobs"))

            # Search: highlighted code with line numbers and the symbol.
            desktop.get(f"{base}/")
            box = desktop.find_element(By.NAME, "q")
            box.send_keys("exponential backoff retry")
            desktop.find_element(By.NAME, "language").send_keys("Go")
            desktop.find_element(By.CSS_SELECTOR, "form.search button").click()
            first_result = _until(
                "results", lambda: desktop.find_elements(By.CSS_SELECTOR, "article.result")
            )[0]
            assert "net/retry.go" in first_result.find_element(By.CSS_SELECTOR, ".path").text
            assert "RetryWithBackoff" in first_result.text
            numbers = first_result.find_elements(By.CSS_SELECTOR, ".linenos")
            assert numbers and numbers[0].text.strip().isdigit()
            assert first_result.find_elements(By.CSS_SELECTOR, ".hl span[class]"), "highlighted tokens"
            _shot(desktop, "search")

            # Watch a slow job to completion, live.
            slow_embeddings.delay_seconds = 0.4
            many = make_repo(
                {f"pkg/m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(40)}, name="many"
            )
            watched = svc.start_indexing(str(many))["job_id"]
            desktop.get(f"{base}/jobs")
            row = f'tr.job[data-job="{watched}"]'
            _until(
                "the job to run",
                lambda: desktop.find_element(By.CSS_SELECTOR, f"{row} td.status").text == "running",
            )
            _until(
                "a percentage",
                lambda: "%" in desktop.find_element(By.CSS_SELECTOR, f"{row} td.progress").text,
            )
            _shot(desktop, "jobs")
            slow_embeddings.delay_seconds = 0.0
            _until(
                "completion",
                lambda: desktop.find_element(By.CSS_SELECTOR, f"{row} td.status").text == "completed",
                timeout=300,
            )
            assert "100" in desktop.find_element(By.CSS_SELECTOR, f"{row} td.progress").text
            assert not desktop.find_elements(By.CSS_SELECTOR, f"{row} button.cancel")

            # Cancel a running job from the page.
            slow_embeddings.delay_seconds = 1.0
            victim = svc.start_indexing(str(many), force_reindex=True)["job_id"]
            desktop.get(f"{base}/jobs")
            row = f'tr.job[data-job="{victim}"]'
            _until(
                "a cancel button", lambda: desktop.find_element(By.CSS_SELECTOR, f"{row} button.cancel")
            ).click()
            _until(
                "cancelled",
                lambda: desktop.find_element(By.CSS_SELECTOR, f"{row} td.status").text == "cancelled",
            )
            slow_embeddings.delay_seconds = 0.0
            assert svc.get_status(victim)["status"] == "cancelled"

            # The failed job's error, in full.
            error = desktop.find_element(By.CSS_SELECTOR, f'[data-error-for="{failed.id}"] pre.error').text
            assert error == reason.strip()

            desktop.get(f"{base}/repos")
            table = _until("repositories", lambda: desktop.find_element(By.ID, "repos"))
            assert str(repo.resolve()) in table.text and "python 1" in table.text and "go 1" in table.text
            _shot(desktop, "repos")
        finally:
            desktop.quit()

        phone = _browser(390, 844, phone=True)
        try:
            phone.get(f"{base}/login")
            phone.find_element(By.NAME, "token").send_keys(TOKEN)
            phone.find_element(By.CSS_SELECTOR, "form.login button").click()
            _until("the search page", lambda: phone.find_element(By.NAME, "q"))
            phone.get(f"{base}/?q=invoice+total+with+tax")
            _until("results", lambda: phone.find_elements(By.CSS_SELECTOR, "article.result"))
            width = phone.execute_script("return document.documentElement.scrollWidth")
            assert phone.execute_script("return window.innerWidth") == 390
            wide = phone.execute_script(WIDE_ELEMENTS)
            assert width <= 390, f"the page scrolls sideways on a phone ({width} px): {wide}"
            _shot(phone, "search-phone")
        finally:
            phone.quit()
