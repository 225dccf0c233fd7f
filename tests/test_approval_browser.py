"""Issue 17, the approval page in a real browser: headless Chromium, driven by selenium through
chromedriver, against `LocalApprovalServer` (as a stdio server serves it) and against the routes
mounted in a Starlette app (as hosted mode does), each on `MemoryApprovals` and on a real SQLite
store. A person approves, declines, lets it expire, double-clicks, reloads, opens it in a second
browser; a forged form (no token, a wrong one, another site's page with the right one) and plain
GETs change nothing; and what is shown is the exact text, with nothing hidden or run.

These tests never skip: without chromium and chromedriver they FAIL and say how to install them
(`python3 scripts/test.py` installs them when it may)."""

from __future__ import annotations

import asyncio
import html
import os
import shutil
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import pytest
import uvicorn
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from nexor_mcp.approvals import ApprovalStore, LocalApprovalServer, MemoryApprovals, approval_routes, approval_token
from nexor_mcp.listening import listening_socket
from nexor_mcp.quoting import block, quote
from nexor_mcp.store import open_store

T = TypeVar("T")
KEY = b"browser-test-key-0123456789abcdef0123"
HEADLESS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--lang=en-US")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
INSTALL = ("install them: `sudo apt-get install -y chromium chromium-driver` (Debian/Ubuntu), or run "
           "`python3 scripts/test.py` as root, which does; NEXOR_TEST_CHROMIUM and NEXOR_TEST_CHROMEDRIVER "
           "name other paths")
MESSAGE = "Hola Ana, te confirmo la demo del martes a las 15:00.\n  Segunda línea, con espacios.\n\nFin."
LINK = "https://example.com/agenda?session=" + "x" * 150
APPROVE = "//button[normalize-space()='Approve']"
DECLINE = "//button[normalize-space()='Decline']"
ANY_BUTTON = "//button[normalize-space()='Approve' or normalize-space()='Decline']"


def question(lead: str = "Ana Rojas", extra: str = "") -> str:
    """A send_message question as nexor_mcp/tools/messages.py words it: text, template, parameters."""
    return "\n".join([
        f"Send a WhatsApp template message to {quote(lead)} at {quote('+56987654321')} now.",
        "Text:",
        block(MESSAGE),
        f"Template {quote('first_contact_es')} (b3c1f0a2-4d5e-4f60-8a7b-9c0d1e2f3a4b, language {quote('es')}), "
        "as Nexor lists it:",
        "Body:",
        block("Hola {{1}}, soy {{2}} de Nexor Demo."),
        "Parameters filled in, as sent:",
        f"- body {{{{1}}}}: {quote('Ana')}",
        f"- body {{{{2}}}}: {quote(LINK, limit=10_000)}",
        f"From workflow {quote('SDR inbound')} (1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d): its WhatsApp number is used.",
        *([extra] if extra else []),
    ])


# --- the browser ---------------------------------------------------------------------------------------


def browser_paths() -> tuple[str, str]:
    """Chromium and chromedriver, or a test failure that says how to get them (never a skip)."""
    chromium = os.environ.get("NEXOR_TEST_CHROMIUM") or next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = os.environ.get("NEXOR_TEST_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium or not Path(chromium).exists():
        pytest.fail(f"the approval page's browser tests need Chromium, which is not installed: {INSTALL}",
                    pytrace=False)
    if not driver or not Path(driver).exists():
        pytest.fail(f"the approval page's browser tests need chromedriver, which is not installed: {INSTALL}",
                    pytrace=False)
    return chromium, driver


def start_browser() -> WebDriver:
    chromium, driver = browser_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in HEADLESS:
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """One headless Chromium for the module."""
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def second_browser() -> Iterator[WebDriver]:
    """Another Chromium, with its own cookies and history: a second person, or a second device."""
    driver = start_browser()
    try:
        yield driver
    finally:
        driver.quit()


# --- the servers ---------------------------------------------------------------------------------------


class Loop:
    """An asyncio event loop in a thread, where `LocalApprovalServer` runs as it would in a stdio server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="approval-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class Served:
    """An ASGI app served by uvicorn on a loopback port, in a thread (the mounted routes; another site)."""

    def __init__(self, app: Callable[..., Any] | None = None) -> None:
        self.sock = listening_socket("127.0.0.1", 0, ipv6=False)
        self.port: int = self.sock.getsockname()[1]
        self.origin = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None
        if app is not None:
            self.start(app)

    def start(self, app: Callable[..., Any]) -> None:
        config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(5)


@dataclass
class Target:
    """Where the page is served and what it decides on."""

    name: str
    approvals: ApprovalStore
    url_for: Callable[[str], str]
    origin: str
    told: list[tuple[str, bool]] = field(default_factory=list)

    def on_decided(self, approval_id: str, approved: bool) -> None:
        self.told.append((approval_id, approved))

    def told_about(self, approval_id: str) -> list[bool]:
        return [approved for told_id, approved in self.told if told_id == approval_id]

    def create(self, *, ask: str | None = None, expires_in: float = 300.0, body: Any = None) -> str:
        return self.approvals.create_approval(
            account="5f2c1a9e0b7d4c3a", tool="send_message", method="POST", path="/messages",
            body=body if body is not None else {"lead_id": "3f2b8c1e", "channel": "whatsapp", "content": MESSAGE},
            question=ask if ask is not None else question(), expires_at=time.time() + expires_in)

    def state(self, approval_id: str) -> str:
        found = self.approvals.get_approval(approval_id)
        assert found is not None
        return found.state


@pytest.fixture(scope="module", params=["local-memory", "local-sqlite", "mounted-memory", "mounted-sqlite"])
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """The page as a stdio server serves it (LocalApprovalServer) and as hosted mode mounts it (the
    routes under a prefix of a Starlette app), each on MemoryApprovals and on a real SQLite store."""
    serving, kind = request.param.split("-")
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('approvals') / 'state.db'}") if kind == "sqlite" else None
    approvals: ApprovalStore = store if store is not None else MemoryApprovals()
    try:
        if serving == "local":
            loop = Loop()
            holder: list[Target] = []
            server = LocalApprovalServer(approvals, KEY, on_decided=lambda i, a: holder[0].on_decided(i, a))
            base = loop.run(server.start())
            holder.append(Target(request.param, approvals, server.url_for, base))
            try:
                yield holder[0]
            finally:
                loop.run(server.close())
                loop.stop()
        else:
            served = Served()
            made = Target(request.param, approvals, lambda i: f"{served.origin}/hosted/approve/{i}", served.origin)
            routes = approval_routes(approvals, KEY, on_decided=made.on_decided,
                                     allowed_hosts={f"127.0.0.1:{served.port}"})
            served.start(Starlette(routes=[Mount("/hosted", routes=routes)]))
            try:
                yield made
            finally:
                served.stop()
    finally:
        if store is not None:
            store.close()


async def another_site_page(request: Request) -> HTMLResponse:
    """A page of another origin whose form posts to an approval, even with the page's right token."""
    action, token = request.query_params["action"], request.query_params["token"]
    return HTMLResponse(
        '<!doctype html><title>Win a prize</title><h1>Win a prize</h1>'
        f'<form method="post" action="{html.escape(action)}">'
        f'<input type="hidden" name="token" value="{html.escape(token)}">'
        '<button type="submit" name="decision" value="approve">Approve</button></form>')


@pytest.fixture(scope="module")
def another_site() -> Iterator[Served]:
    served = Served(Starlette(routes=[Route("/", another_site_page)]))
    try:
        yield served
    finally:
        served.stop()


# --- helpers -------------------------------------------------------------------------------------------


def waiting(driver: WebDriver, timeout: float = 10) -> WebDriverWait[WebDriver]:
    """A wait that looks again while the page is being replaced: during a navigation, an element
    found a moment ago is gone (stale, or "does not belong to the document")."""
    return WebDriverWait(driver, timeout, ignored_exceptions=(WebDriverException,))


def heading(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "h1").text


def wait_for_heading(driver: WebDriver, text: str, timeout: float = 10) -> str:
    waiting(driver, timeout).until(lambda d: text in heading(d))
    return heading(driver)


def button(driver: WebDriver, xpath: str = APPROVE) -> WebElement:
    found = driver.find_element(By.XPATH, xpath)
    assert found.accessible_name in ("Approve", "Decline") and found.is_displayed() and found.is_enabled()
    return found


def page_text(driver: WebDriver) -> str:
    return driver.find_element(By.TAG_NAME, "body").text


def show(driver: WebDriver, url: str) -> None:
    driver.get(url)
    waiting(driver).until(lambda d: d.find_elements(By.TAG_NAME, "h1"))


# --- a person decides ----------------------------------------------------------------------------------


def test_approve_records_the_decision_once_and_says_so(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    assert heading(browser) == "Send message" and "Approval requested" in page_text(browser)
    assert button(browser, APPROVE).accessible_name == "Approve"
    assert button(browser, DECLINE).accessible_name == "Decline"
    assert target.state(approval_id) == "pending"
    button(browser, APPROVE).click()
    wait_for_heading(browser, "Approved: nexor-mcp is sending it now")
    assert "You can return to your assistant now." in page_text(browser)
    assert browser.find_elements(By.XPATH, ANY_BUTTON) == []
    decided = target.approvals.get_approval(approval_id)
    assert decided is not None and (decided.state, decided.decided_by) == ("approved", "browser page")
    assert target.told_about(approval_id) == [True]


def test_decline_records_it_and_says_nothing_was_sent(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    button(browser, DECLINE).click()
    wait_for_heading(browser, "Declined: nothing was sent")
    assert "You can return to your assistant now." in page_text(browser)
    assert browser.find_elements(By.XPATH, ANY_BUTTON) == []
    assert target.state(approval_id) == "declined" and target.told_about(approval_id) == [False]


def test_a_reload_after_deciding_says_it_was_already_decided(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    button(browser, APPROVE).click()
    wait_for_heading(browser, "Approved: nexor-mcp is sending it now")
    browser.refresh()
    assert wait_for_heading(browser, "Already decided") == "Already decided: approved"
    assert "approved at" in page_text(browser) and "by browser page" in page_text(browser)
    assert browser.find_elements(By.XPATH, ANY_BUTTON) == []
    browser.back()  # the page with the buttons, from history: reloaded (no-store), so decided too
    waiting(browser).until(lambda d: not d.find_elements(By.XPATH, ANY_BUTTON))
    assert target.state(approval_id) == "approved" and target.told_about(approval_id) == [True]


def test_a_second_browser_sees_the_decision_and_no_buttons(
    target: Target, browser: WebDriver, second_browser: WebDriver
) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    show(second_browser, target.url_for(approval_id))  # open in both, before either decides
    button(browser, DECLINE).click()
    wait_for_heading(browser, "Declined: nothing was sent")
    show(second_browser, target.url_for(approval_id))
    assert heading(second_browser) == "Already decided: declined"
    assert second_browser.find_elements(By.XPATH, ANY_BUTTON) == []
    assert target.state(approval_id) == "declined" and target.told_about(approval_id) == [False]


def test_a_stale_page_in_a_second_browser_cannot_decide_again(
    target: Target, browser: WebDriver, second_browser: WebDriver
) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    show(second_browser, target.url_for(approval_id))
    button(browser, APPROVE).click()
    wait_for_heading(browser, "Approved: nexor-mcp is sending it now")
    button(second_browser, DECLINE).click()  # its buttons are still on the screen
    assert wait_for_heading(second_browser, "Already decided") == "Already decided: approved"
    assert "Nothing more was done: this request had already been decided." in page_text(second_browser)
    assert target.state(approval_id) == "approved" and target.told_about(approval_id) == [True]


def test_a_double_click_on_approve_decides_once(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    ActionChains(browser).double_click(button(browser, APPROVE)).perform()
    waiting(browser).until(lambda d: heading(d).startswith(("Approved", "Already decided")))
    assert browser.find_elements(By.XPATH, ANY_BUTTON) == []
    assert target.state(approval_id) == "approved" and target.told_about(approval_id) == [True]


def test_an_expired_request_shows_expired_and_refuses_a_late_click(
    target: Target, browser: WebDriver, second_browser: WebDriver
) -> None:
    waiting = target.create(expires_in=1.0)
    show(second_browser, target.url_for(waiting))  # left open: reloads itself once expired
    late = target.create(expires_in=2.5)
    show(browser, target.url_for(late))
    assert button(second_browser).is_displayed() and button(browser).is_displayed()
    time.sleep(2.8)  # past its expiry, before the page's own reload
    button(browser, APPROVE).click()
    assert wait_for_heading(browser, "expired") == "This request expired"
    assert "Your decision was not recorded: the request had expired." in page_text(browser)
    assert "nothing was sent" in page_text(browser)
    assert browser.find_elements(By.XPATH, ANY_BUTTON) == []
    assert target.state(late) == "expired" and target.told_about(late) == []
    assert wait_for_heading(second_browser, "This request expired") == "This request expired"
    assert second_browser.find_elements(By.XPATH, ANY_BUTTON) == []
    assert target.state(waiting) == "expired"


# --- what is not a decision ---------------------------------------------------------------------------


def test_a_form_without_the_page_token_is_refused(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    browser.execute_script("document.querySelector('input[name=token]').remove()")
    button(browser, APPROVE).click()
    wait_for_heading(browser, "Refused: nothing was decided")
    assert "It carried no approval token." in page_text(browser)
    assert target.state(approval_id) == "pending" and target.told_about(approval_id) == []
    browser.find_element(By.LINK_TEXT, "Back to the approval").click()
    assert wait_for_heading(browser, "Send message") and button(browser).is_displayed()


def test_a_form_with_a_wrong_token_is_refused(target: Target, browser: WebDriver) -> None:
    approval_id, other = target.create(), target.create()
    show(browser, target.url_for(approval_id))
    browser.execute_script("document.querySelector('input[name=token]').value = arguments[0]",
                           approval_token(KEY, other))  # a real token, of another approval
    button(browser, APPROVE).click()
    wait_for_heading(browser, "Refused: nothing was decided")
    assert "Its approval token is not this page's." in page_text(browser)
    assert (target.state(approval_id), target.state(other)) == ("pending", "pending")


def test_another_sites_form_is_refused_even_with_the_right_token(
    target: Target, browser: WebDriver, another_site: Served
) -> None:
    approval_id = target.create()
    url = target.url_for(approval_id)
    show(browser, f"{another_site.origin}/?{httpx2.QueryParams(action=url, token=approval_token(KEY, approval_id))}")
    button(browser, APPROVE).click()
    wait_for_heading(browser, "Refused: nothing was decided")
    assert "another" in page_text(browser)  # another site (Sec-Fetch-Site) or another origin
    assert target.state(approval_id) == "pending" and target.told_about(approval_id) == []


def test_looking_at_the_page_decides_nothing(target: Target, browser: WebDriver, second_browser: WebDriver) -> None:
    approval_id = target.create()
    url = target.url_for(approval_id)
    for driver in (browser, second_browser, browser):
        show(driver, url)
        assert heading(driver) == "Send message"
    assert httpx2.get(url).status_code == 200 and httpx2.head(url).status_code == 200
    assert target.state(approval_id) == "pending" and target.told_about(approval_id) == []


# --- what the person sees ------------------------------------------------------------------------------


def test_the_page_shows_the_exact_text_and_every_template_parameter(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    show(browser, target.url_for(approval_id))
    blocks = [element.get_attribute("textContent") for element in browser.find_elements(By.CSS_SELECTOR, "blockquote")]
    assert blocks == [MESSAGE, "Hola {{1}}, soy {{2}} de Nexor Demo."]
    text = page_text(browser)
    assert 'Send a WhatsApp template message to "Ana Rojas" at "+56987654321" now.' in text
    assert '- body {{1}}: "Ana"' in text and f'- body {{{{2}}}}: "{LINK}"' in text
    assert 'From workflow "SDR inbound"' in text
    assert "Contacts a real person now." in text and "A message cannot be unsent" in text
    assert "If you approve, nexor-mcp sends it once, now. If you decline, nothing is sent." in text
    assert "In 5 minutes, at " in text and " UTC on " in text
    assert '"content": "Hola Ana, te confirmo la demo del martes a las 15:00.\\n  Segunda línea' in text
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0


def test_a_bidi_override_in_a_lead_name_is_spelled_out(target: Target, browser: WebDriver) -> None:
    quoted = question(lead="Ana \u202eSAGROR")  # quoted by the question already
    raw = "\n".join([quoted, "Raw: Ana \u202eSAGROR \u200b\u2066end"])  # and if it ever were not
    approval_id = target.create(ask=raw, body={"first_name": "Ana \u202eSAGROR"})
    show(browser, target.url_for(approval_id))
    text = page_text(browser)
    assert 'to "Ana [U+202E]SAGROR" at' in text
    assert "Raw: Ana [U+202E]SAGROR [U+200B][U+2066]end" in text
    assert '"first_name": "Ana \\u202eSAGROR"' in text
    assert not any(char in text for char in "\u202e\u200b\u2066")


def test_markup_in_a_value_is_shown_as_text_and_never_runs(target: Target, browser: WebDriver) -> None:
    script = "<script>window.pwned = 1; alert(1)</script>"
    image = '<img src=x onerror="window.pwned = 2">'
    ask = question(lead=f"Ana {script}", extra=f"Reason: {image} </div></form><button>Approve</button>")
    approval_id = target.create(ask=ask, body={"content": script})
    show(browser, target.url_for(approval_id))
    text = page_text(browser)
    assert f'to "Ana {script}" at' in text and f"Reason: {image}" in text
    assert browser.find_elements(By.TAG_NAME, "script") == [] and browser.find_elements(By.TAG_NAME, "img") == []
    assert len(browser.find_elements(By.TAG_NAME, "button")) == 2  # the page's own, nothing injected
    assert browser.execute_script("return window.pwned === undefined")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.accept()
    assert target.state(approval_id) == "pending"


def test_on_a_phone_nothing_overflows_and_the_buttons_are_large(target: Target, browser: WebDriver) -> None:
    approval_id = target.create()
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 375, "height": 740, "deviceScaleFactor": 2, "mobile": True})
    try:
        show(browser, target.url_for(approval_id))
        assert browser.execute_script(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        for xpath in (APPROVE, DECLINE):
            size = button(browser, xpath).size
            assert size["height"] >= 44 and size["width"] >= 280  # full width, a large tap target
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        background = browser.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(11, 15, 22)"  # the dark palette
        button(browser, APPROVE).click()
        wait_for_heading(browser, "Approved: nexor-mcp is sending it now")
        assert target.state(approval_id) == "approved"
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
