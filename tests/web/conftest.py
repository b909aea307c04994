"""Starts `gpt-oss serve` (no --model: the built-in demo model answers) on
127.0.0.1 with a free port, plus a second instance with --api-key, and one
headless Chromium (the system's, through Playwright) for the whole session.
Every page a test opens records its requests; the test fails if any request
went anywhere but the server's own origin."""

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

HERE = Path(__file__).resolve().parent
ARTIFACTS = HERE / "artifacts"
API_KEY = "web-test-key-42"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, extra_args=()):
        ARTIFACTS.mkdir(exist_ok=True)
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = ARTIFACTS / f"server-{name}.log"
        self.log = open(self.log_path, "w")
        args = [os.environ["GPT_OSS_BIN"], "serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--max-concurrency", "2", "--store", "none", *extra_args]
        # The dense unembedding (bit-identical logits, ~8x slower on the demo model) keeps a
        # ~300-token answer streaming long enough for the Stop test to click Stop mid-answer.
        env = dict(os.environ, GPTOSS_DENSE_UNEMBED="1")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.api_key = None
        if "--api-key" in extra_args:
            self.api_key = extra_args[list(extra_args).index("--api-key") + 1]
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(self.base + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.proc.kill()
        raise RuntimeError("server did not come up in 120 s")

    def metrics(self):
        req = urllib.request.Request(self.base + "/metrics")
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.load(r)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.log.close()
        assert code == 0, f"server did not shut down cleanly (exit {code}):\n{self.log_path.read_text()[-3000:]}"


@pytest.fixture(scope="session")
def server():
    s = Server("demo")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def key_server():
    s = Server("api-key", ("--api-key", API_KEY))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield b
        b.close()


class PageFactory:
    """New browser contexts whose every request is recorded and checked."""

    def __init__(self, browser):
        self.browser = browser
        self.contexts = []
        self.requests = []  # (origin the page belongs to, url)

    def new(self, origin, **context_args):
        context = self.browser.new_context(viewport={"width": 1200, "height": 850}, **context_args)
        self.contexts.append(context)
        page = context.new_page()
        page.on("request", lambda req: self.requests.append((origin, req.url)))
        page.on("pageerror", lambda err: self.page_errors.append(str(err)))
        return page

    page_errors = []

    def check(self):
        for origin, url in self.requests:
            assert url == origin or url.startswith(origin + "/"), f"request left the server: {url}"
        for context in self.contexts:
            context.close()


@pytest.fixture
def pages(browser):
    factory = PageFactory(browser)
    factory.page_errors = []
    yield factory
    factory.check()
    assert factory.page_errors == [], f"uncaught errors in the page: {factory.page_errors}"
