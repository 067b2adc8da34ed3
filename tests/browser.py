"""A real headless Chromium for the page's tests: Debian's own, driven by Playwright.

Playwright (the `playwright` package, `dev` extras) launches the Chromium found on this machine through
`executable_path`; its own browser download is never used (`playwright install` needs a network this
project's machines do not have, and Debian's package is what `python -m generator sandbox browser`
installs). Tests drive the page as a person does, with real input: `select_option`, `fill`, `click`.
`evaluate` awaits a returned Promise. A test waits for the page with Playwright's `expect`, which polls
until the condition holds and fails the test after `TIMEOUT_MS` (not `wait_for_function`: it compiles its
condition with eval inside the page, and the page's Content-Security-Policy forbids eval).

Every request, console error (a Content-Security-Policy violation is one) and uncaught exception of the
page since the last `open` is recorded, so a test can assert the page fetched nothing and failed nowhere.
Chromium runs with a fresh profile (Playwright's temporary one), no sandbox (CI runs as root), no GPU.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import TracebackType
from typing import Any

from playwright.sync_api import ConsoleMessage, Page, Request, expect, sync_playwright
from playwright.sync_api import Error as PlaywrightError

CANDIDATES = ("chromium", "chromium-browser")  # Debian's package, and the name other distributions use
FLAGS = (
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MiB
    "--hide-scrollbars",  # screenshots and widths without a scrollbar's pixels
)
# Long enough for a slow shared machine, short enough that a selector which never matches fails the test
# quickly instead of waiting Playwright's default 30 s per call.
TIMEOUT_MS = 10_000


def find_chromium() -> str | None:
    """$AIR_FLEET_CHROMIUM, else the first of CANDIDATES on PATH."""
    configured = os.environ.get("AIR_FLEET_CHROMIUM")
    if configured:
        return configured
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class Browser:
    def __init__(self, executable: str, *, width: int = 1400, height: int = 900) -> None:
        self._playwright = sync_playwright().start()
        try:
            # chromium_sandbox=False is Playwright's default (--no-sandbox): CI runs as root.
            self._browser = self._playwright.chromium.launch(executable_path=executable, args=list(FLAGS))
        except BaseException:
            self._playwright.stop()
            raise
        self._requests: list[str] = []
        self._problems: list[str] = []
        self._mobile = False
        self.page = self._new_page(width, height, mobile=False)

    @property
    def version(self) -> str:
        return self._browser.version

    def _new_page(self, width: int, height: int, *, mobile: bool) -> Page:
        """A page in a fresh context: a phone (touch, scale 2) is a context option, not a page one."""
        context = self._browser.new_context(
            viewport={"width": width, "height": height},
            device_scale_factor=2 if mobile else 1,
            is_mobile=mobile,
            has_touch=mobile,
        )
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.on("request", self._on_request)
        page.on("console", self._on_console)
        page.on("pageerror", self._on_page_error)
        self._mobile = mobile
        return page

    def _on_request(self, request: Request) -> None:
        self._requests.append(request.url)

    def _on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":  # console.error, and Chromium's own reports: CSP violations, failed loads
            self._problems.append(f"console.error: {message.text}")

    def _on_page_error(self, error: PlaywrightError) -> None:
        self._problems.append(f"exception: {error.message}")

    # -- what tests do ---------------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (scripts at the end of the body have run)."""
        self._requests.clear()
        self._problems.clear()
        self.page.goto(url, wait_until="load")

    def resize(self, width: int, height: int, *, mobile: bool = False) -> None:
        """The viewport; switching between phone and desktop opens a new page (call `open` after)."""
        if mobile == self._mobile:
            self.page.set_viewport_size({"width": width, "height": height})
            return
        old = self.page.context
        self.page = self._new_page(width, height, mobile=mobile)
        old.close()

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page, a Promise's once it settles; an exception in it
        is raised (playwright's Error)."""
        return self.page.evaluate(expression)

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=path, full_page=full_page)
        return path

    def requests(self) -> list[str]:
        """Every URL the page requested since `open`, the page's own first; a request CSP blocks counts too."""
        return list(self._requests)

    def problems(self) -> list[str]:
        """Uncaught exceptions and console errors since `open` (a CSP violation is one)."""
        return list(self._problems)

    # -- lifetime --------------------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self._browser.close()
        finally:
            self._playwright.stop()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
