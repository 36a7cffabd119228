"""The studio in Debian's Chromium, used as a marketer uses it: pick a step, switch to the
phone width and dark mode, edit the template on disk and watch the page follow, break it and
fix it, and see a failing check listed. Screenshots of each state go to test-artifacts/studio/.

No database or Redis: the studio reads files only (the impact panel says no database is set).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from drip.studio.app import StudioConfig, create_studio_app
from drip.testing.threads import CheckedThread
from tests.conftest import ARTIFACTS, REPO, wait_for
from tests.integration.browser import chromium, free_port

pytestmark = pytest.mark.browser

SHOTS = ARTIFACTS / "studio"
STEP_3 = "achievements-with-numbers"
TEMPLATE_3 = "templates/executive-resume/03-achievements-with-numbers.html"
HEADING_3 = "Duties describe a job. Numbers describe you."


@contextmanager
def running_studio(folder: Path) -> Iterator[str]:
    """The studio over `folder` on 127.0.0.1, served by uvicorn in a thread."""
    config = StudioConfig(
        folder=folder,
        postal_address="The Resume Studio, 100 Example Street, Springfield, USA",
        base_url="https://resumes.example.com",
        test_recipients=("marketer@example.com",),
    )
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_studio_app(config),
            host="127.0.0.1",
            port=port,
            log_config=None,
            timeout_graceful_shutdown=1,
        )
    )
    thread = CheckedThread(server.run, name="studio")
    thread.start()
    try:
        wait_for(lambda: server.started, what="the studio")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def shot(driver: Any, name: str) -> None:
    """Write a screenshot of the page to test-artifacts/studio/`name`.png."""
    png = driver.get_screenshot_as_png()
    assert len(png) > 10_000  # a drawn page, not an empty canvas
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / f"{name}.png").write_bytes(png)


def _rendered(driver: Any) -> str:
    return str(driver.execute_script("return document.body.dataset.rendered || ''"))


def _srcdoc(driver: Any, frame: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.ID, frame).get_attribute("srcdoc") or "")


def _inner_width(driver: Any, frame: str) -> int:
    """The width the email is laid out in (the frame's viewport, its border left out)."""
    return int(driver.execute_script(f"return document.getElementById('{frame}').clientWidth"))


def _click(driver: Any, selector: str) -> None:
    """Click the element; the list is drawn again on every reload, so a click that finds the
    old element is tried again on the new one."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By

    def clicked() -> bool:
        try:
            driver.find_element(By.CSS_SELECTOR, selector).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(clicked, what=f"a click on {selector}")


def test_a_marketer_edits_breaks_and_fixes_a_template_while_the_studio_follows(
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    folder = tmp_path / "sequences"
    shutil.copytree(REPO / "sequences", folder)
    template = folder / TEMPLATE_3
    original = template.read_text()
    with running_studio(folder) as base, chromium() as driver:
        driver.set_window_size(1440, 1200)  # type: ignore[attr-defined]
        # Given the studio, open on the first step
        driver.get(base + "/")  # type: ignore[attr-defined]
        wait_for(lambda: _rendered(driver).startswith("ok-"), what="the first email")
        wait_for(
            lambda: driver.find_element(By.ID, "live").get_attribute("data-state") == "live",  # type: ignore[attr-defined]
            what="the live event stream",
        )
        # The watcher is running: a file saved in the folder reaches the page.
        (folder / "notes.txt").write_text("a file the marketer saved")
        wait_for(lambda: _rendered(driver) == "ok-2", timeout=5, what="the first reload")

        # When they pick step 3, then switch to the phone width and dark mode
        _click(driver, f'button.step[data-sequence="executive-resume"][data-step="{STEP_3}"]')
        wait_for(lambda: HEADING_3 in _srcdoc(driver, "frame-phone"), what="step 3")
        _click(driver, 'button[data-width="phone"]')
        _click(driver, 'button[data-mode="dark"]')
        # Then the phone frame alone shows step 3 with its dark-mode rules in force
        phone = driver.find_element(By.ID, "frame-phone")  # type: ignore[attr-defined]
        desktop = driver.find_element(By.ID, "frame-desktop")  # type: ignore[attr-defined]
        assert phone.is_displayed()
        assert not desktop.is_displayed()
        assert _inner_width(driver, "frame-phone") == 375
        assert "color-scheme: dark" in _srcdoc(driver, "frame-phone")
        assert driver.find_element(By.ID, "inbox-subject").text == HEADING_3  # type: ignore[attr-defined]
        shot(driver, "1-step3-phone-dark")

        # When the template is edited on disk
        driver.execute_script("window.notReloaded = true")  # type: ignore[attr-defined]
        template.write_text(original.replace(HEADING_3, "Numbers get you the interview."))
        # Then the change appears within two seconds, without a reload of the page
        wait_for(
            lambda: "Numbers get you the interview." in _srcdoc(driver, "frame-phone"),
            timeout=2.0,
            what="the edited heading",
        )
        assert driver.execute_script("return window.notReloaded") is True  # type: ignore[attr-defined]
        shot(driver, "2-edited")

        # When the template is broken (an `if` with no condition on line 3)
        lines = original.splitlines()
        lines.insert(2, "<p>{% if %}broken{% endif %}</p>")
        template.write_text("\n".join(lines) + "\n")
        # Then the error shows in place of the email, with the file, its line and an excerpt
        error = driver.find_element(By.ID, "error")  # type: ignore[attr-defined]
        wait_for(error.is_displayed, timeout=2.0, what="the error")
        assert f"{template}, line 3" in driver.find_element(By.ID, "error-where").text  # type: ignore[attr-defined]
        excerpt = driver.find_element(By.ID, "error-excerpt").text  # type: ignore[attr-defined]
        assert "3 | <p>{% if %}broken{% endif %}</p>" in excerpt
        assert not phone.is_displayed()
        assert driver.execute_script("return window.notReloaded") is True  # type: ignore[attr-defined]
        shot(driver, "3-broken")

        # When it is fixed, then the email comes back
        template.write_text(original)
        wait_for(lambda: not error.is_displayed(), timeout=2.0, what="the error to go")
        wait_for(lambda: HEADING_3 in _srcdoc(driver, "frame-phone"), what="the email again")
        assert phone.is_displayed()
        shot(driver, "4-fixed")

        # When the template grows past Gmail's clipping size and gains an image without alt
        filler = "<p>" + "Numbers describe you. " * 5200 + "</p>"
        template.write_text(original + '<img src="https://example.com/chart.png">\n' + filler)
        wait_for(lambda: "chart.png" in _srcdoc(driver, "frame-phone"), what="the big email")
        _click(driver, 'button[data-tab="checks"]')
        # Then the checks list both as errors
        checks = {
            item.get_attribute("data-check"): item.get_attribute("class")
            for item in driver.find_elements(By.CSS_SELECTOR, "#check-list li")  # type: ignore[attr-defined]
        }
        assert checks.get("gmail-clipping") == "error", checks
        assert checks.get("image-alt") == "error", checks
        listed = driver.find_element(By.ID, "check-list").text  # type: ignore[attr-defined]
        assert "Gmail clips a message over 102 KB" in listed
        assert "'https://example.com/chart.png' has no alt text" in listed
        shot(driver, "5-failing-checks")

        # And with the file restored, the sample series' step 1 at both widths, light mode
        template.write_text(original)
        wait_for(lambda: "chart.png" not in _srcdoc(driver, "frame-phone"), what="the restore")
        _click(driver, 'button[data-tab="email"]')
        _click(driver, 'button[data-width="both"]')
        _click(driver, 'button[data-mode="light"]')
        _click(
            driver, 'button.step[data-sequence="executive-resume"][data-step="template-delivery"]'
        )
        wait_for(
            lambda: "Here is your executive resume template" in _srcdoc(driver, "frame-desktop"),
            what="step 1",
        )
        assert desktop.is_displayed()
        assert phone.is_displayed()
        assert _inner_width(driver, "frame-desktop") == 600
        shot(driver, "step1-both-widths")
