"""Screenshots of the approval page for the README, taken in a real headless Chromium.

    python scripts/screenshots.py [--out docs/images] [--chromium PATH] [--chromedriver PATH]

Serves a realistic send_message approval (a WhatsApp template message to a sandbox lead, with its
parameters) from `LocalApprovalServer`, as a stdio server would, and saves:

- `approval-page.png`: the page as the person sees it, at a desktop width and on a phone;
- `approval-decided.png`: the page after clicking Approve, at both widths.

Each shows the desktop capture (whole page) beside the phone's first screen. Needs chromium and
chromedriver (`apt-get install chromium chromium-driver`); fonts-noto-core gives Linux a typeface
close to what the page gets on macOS or Windows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402

from nexor_mcp import endpoints  # noqa: E402
from nexor_mcp.approvals import LocalApprovalServer, MemoryApprovals  # noqa: E402
from nexor_mcp.confirm import question_text  # noqa: E402
from nexor_mcp.quoting import block, quote  # noqa: E402
from nexor_mcp.sandbox.seed import FIRST_CONTACT_TEMPLATE, SDR_INBOUND  # noqa: E402

T = TypeVar("T")
ANA = "3f2b8c1e-9a4d-4e6f-8b7a-1c2d3e4f5a6b"
TEMPLATE_BODY = ("Hola {{1}}, soy {{2}} de Nexor Demo. ¿Tienes 15 minutos esta semana para conversar sobre tu "
                 "equipo de ventas?")
DESKTOP = (1024, 760)
DESKTOP_DECIDED = (1024, 560)
PHONE = (390, 844)
HEADLESS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
            "--force-color-profile=srgb", "--lang=en-US", "--force-prefers-reduced-motion")


def template_send() -> tuple[dict[str, Any], str]:
    """The request and question send_message would have a person approve (as nexor_mcp/tools/messages.py words it)."""
    components = [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "Sofía"}]}]
    arguments = {"lead_id": ANA, "workflow_id": SDR_INBOUND, "channel": "whatsapp",
                 "template_id": FIRST_CONTACT_TEMPLATE, "components": components}
    summary = "\n".join([
        f"Send a WhatsApp template message to {quote('Ana Rojas')} at {quote('+56987654321')} now.",
        f"Template {quote('first_contact_es')} ({FIRST_CONTACT_TEMPLATE}, language {quote('es')}), as Nexor lists it:",
        "Body:",
        block(TEMPLATE_BODY),
        "Parameters filled in, as sent:",
        f"- body {{{{1}}}}: {quote('Ana')}",
        f"- body {{{{2}}}}: {quote('Sofía')}",
        f"From workflow {quote('SDR inbound')} ({SDR_INBOUND}): its WhatsApp number is used.",
    ])
    return arguments, question_text(summary, [])


class Loop:
    """An asyncio loop in a thread: the page's server runs there while selenium drives the browser."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="approval-page", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@contextmanager
def browser(chromium: str, chromedriver: str) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in HEADLESS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    try:
        yield driver
    finally:
        driver.quit()


def capture(driver: WebDriver, size: tuple[int, int], *, mobile: bool, part: str) -> str:
    """A PNG (base64) of the page at `size` CSS pixels, 2x: its first screen (`part="top"`), its
    last (`"bottom"`, where the buttons are) or the whole page (`"whole"`)."""
    width, height = size
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": mobile})
    time.sleep(0.2)
    content = int(driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]["height"])
    top = max(0, content - height) if part == "bottom" else 0
    if part == "whole":
        height = max(height, content)
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": top, "width": width, "height": height, "scale": 1},
    })
    data: str = shot["data"]
    return data


COMPOSITE = """<!doctype html><html><head><meta charset="utf-8"><style>
html,body{{margin:0}}
body{{background:linear-gradient(160deg,#e8ecf4,#d9dfeb);padding:48px;display:flex;gap:44px;align-items:flex-start;
width:max-content;font-family:"Noto Sans",sans-serif}}
.window{{width:{desktop_width}px;border-radius:12px;overflow:hidden;background:#fff;
box-shadow:0 24px 60px rgba(15,23,42,.18),0 2px 6px rgba(15,23,42,.08)}}
.chrome{{height:38px;background:#f1f3f6;border-bottom:1px solid #dde1e7;display:flex;align-items:center;gap:8px;
padding:0 14px}}
.dot{{width:12px;height:12px;border-radius:50%;background:#d4d8df}}
.url{{margin-left:14px;flex:1;height:24px;border-radius:6px;background:#fff;border:1px solid #dde1e7;color:#5b6472;
font-size:12.5px;line-height:24px;padding:0 10px;overflow:hidden;white-space:nowrap}}
.window img,.phone img{{display:block;width:100%}}
.phones{{display:flex;flex-direction:column;gap:36px}}
.phone{{width:{phone_width}px;padding:12px;border-radius:46px;background:#111827;
box-shadow:0 24px 60px rgba(15,23,42,.25)}}
.phone .screen{{border-radius:36px;overflow:hidden;background:#fff}}
</style></head><body>
<div class="window"><div class="chrome"><span class="dot"></span><span class="dot"></span><span class="dot"></span>
<span class="url">{url}</span></div><img src="data:image/png;base64,{desktop}"></div>
<div class="phones">{phones}</div>
</body></html>"""


def composite(driver: WebDriver, desktop: str, phones: list[str], url: str, out: Path) -> None:
    """The captures side by side, in a browser window and phones, saved as `out`."""
    desktop_width, phone_width = 940, 340
    framed = "".join(f'<div class="phone"><div class="screen"><img src="data:image/png;base64,{phone}"></div></div>'
                     for phone in phones)
    page = COMPOSITE.format(desktop=desktop, phones=framed, url=url, desktop_width=desktop_width,
                            phone_width=phone_width)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "composite.html"
        path.write_text(page, encoding="utf-8")
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.get(path.as_uri())
        time.sleep(0.3)
        content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        width, height = int(content["width"]), int(content["height"])
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1.5, "mobile": False})
        time.sleep(0.2)
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        })
    out.write_bytes(base64.b64decode(shot["data"]))
    print(f"saved {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({width}x{height} CSS px)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument("--chromedriver", default=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    parser.add_argument("--raw", action="store_true", help="also save each capture on its own")
    parser.add_argument("--dark", action="store_true", help="as with prefers-color-scheme: dark")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    arguments, question = template_send()
    request = endpoints.send_message(arguments)
    approvals = MemoryApprovals()
    server = LocalApprovalServer(approvals, secrets.token_bytes(32))
    loop = Loop()
    try:
        loop.run(server.start())

        def new_approval() -> str:
            now = time.time()
            return server.url_for(approvals.create_approval(
                account="5f2c1a9e0b7d4c3a", tool="send_message", method=request.method, path="/" + request.path,
                body=request.body, question=question, expires_at=now + 300, now=now))

        with browser(args.chromium, args.chromedriver) as driver:
            if args.dark:
                driver.execute_cdp_cmd("Emulation.setEmulatedMedia",
                                       {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
            # (name, desktop size, desktop part, phone parts): the page whole beside a phone's first
            # and last screens; the decided page, one screen each.
            plan = (("page", DESKTOP, "whole", ("top", "bottom")), ("decided", DESKTOP_DECIDED, "top", ("top",)))
            for name, desktop, desktop_part, phone_parts in plan:
                captures: list[str] = []
                for size, mobile, parts in ((desktop, False, (desktop_part,)), (PHONE, True, phone_parts)):
                    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
                        "width": size[0], "height": size[1], "deviceScaleFactor": 2, "mobile": mobile})
                    driver.get(new_approval())
                    if name == "decided":
                        driver.find_element(By.XPATH, "//button[normalize-space()='Approve']").click()
                        time.sleep(0.3)
                    for part in parts:
                        captures.append(capture(driver, size, mobile=mobile, part=part))
                        if args.raw:
                            kind = f"phone-{part}" if mobile else "desktop"
                            (args.out / f"approval-{name}-{kind}.png").write_bytes(base64.b64decode(captures[-1]))
                composite(driver, captures[0], captures[1:], f"127.0.0.1:{server.port}/approve/…",
                          args.out / f"approval-{name}.png")
    finally:
        loop.run(server.close())
        loop.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
