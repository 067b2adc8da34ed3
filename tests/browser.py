"""A real headless Chromium, driven over the DevTools protocol through a pipe (no WebDriver, no websocket).

`--remote-debugging-pipe` makes Chromium read protocol messages from fd 3 and write them to fd 4, each a
JSON object ended by a NUL byte. That is all a test needs: load a page, run script in it (click, choose
an option), read the DOM back, take a screenshot, and see every request, console error and uncaught
exception the page caused.

Chromium runs with a fresh profile in a temp folder, no sandbox (CI runs as root), no GPU, and no
background networking, so the only requests are the page's own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",  # root in CI; the page is our own file
    "--disable-gpu",
    "--disable-dev-shm-usage",  # containers give /dev/shm 64 MiB
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
)
TIMEOUT_S = 30.0


class BrowserError(RuntimeError):
    pass


def find_chromium() -> str | None:
    """$AIR_FLEET_CHROMIUM, else the first of CANDIDATES on PATH."""
    configured = os.environ.get("AIR_FLEET_CHROMIUM")
    if configured:
        return configured
    return next((found for name in CANDIDATES if (found := shutil.which(name))), None)


class Browser:
    def __init__(self, executable: str, *, width: int = 1400, height: int = 900) -> None:
        self._profile = tempfile.mkdtemp(prefix="air-fleet-chromium-")
        # A file, not a pipe: Chromium logs freely and a full pipe would block it mid-test.
        self._log = Path(self._profile) / "chromium.log"
        ours_read, theirs_write = os.pipe()  # Chromium writes fd 4 -> we read
        theirs_read, ours_write = os.pipe()  # we write -> Chromium reads fd 3

        def wire() -> None:  # in the child, before exec: the pipe ends at the fds Chromium expects
            os.dup2(theirs_read, 3)
            os.dup2(theirs_write, 4)

        self._proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=wire,  # only dup2 between fork and exec
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log.open("wb"),
        )
        os.close(theirs_read)
        os.close(theirs_write)
        self._in = ours_read
        self._out = ours_write
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.session = ""
        try:
            self._attach(width, height)
        except BaseException:
            self.close()
            raise

    def _attach(self, width: int, height: int) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Network", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", viewport(width, height))

    # -- the protocol ---------------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode("utf-8") + b"\0")
        reply = self._until(lambda m: m.get("id") == self._next_id, f"the reply to {method}")
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error']}")
        return dict(reply.get("result", {}))

    def _until(self, wanted: Any, what: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if wanted(message):
                    return dict(message)
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._in], [], [], left)[0]:
                raise BrowserError(f"Chromium sent no {what} within {timeout:.0f} s")
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed the pipe: {self._stderr()}")
            self._buffer += chunk

    def _stderr(self) -> str:
        try:
            return self._log.read_text(encoding="utf-8", errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    # -- what tests do ---------------------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate and wait for the load event (scripts at the end of the body have run)."""
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self._until(lambda m: m.get("method") == "Page.loadEventFired", "load event")

    def resize(self, width: int, height: int, *, mobile: bool = False) -> None:
        self.call("Emulation.setDeviceMetricsOverride", viewport(width, height, mobile=mobile))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page; an exception in it is a BrowserError."""
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails'].get('exception', result)}")
        return result["result"].get("value")

    def screenshot(self, path: Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        data = self.call("Page.captureScreenshot", params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e["method"] == "Network.requestWillBeSent"]

    def problems(self) -> list[str]:
        """Uncaught exceptions, console errors and browser log errors (a CSP violation is one)."""
        found = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                found.append(f"exception: {p['exceptionDetails'].get('text')} {p['exceptionDetails'].get('exception')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") == "error":
                found.append(f"console.error: {[a.get('value') for a in p.get('args', [])]}")
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                found.append(f"log: {p['entry'].get('text')}")
        return found

    # -- lifetime --------------------------------------------------------------------------------------------

    def close(self) -> None:
        try:
            self.session = ""
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._in, self._out):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def viewport(width: int, height: int, *, mobile: bool = False) -> dict[str, Any]:
    return {"width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile}
