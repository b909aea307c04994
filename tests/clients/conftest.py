"""Starts one `gpt-oss serve` per session on 127.0.0.1 (free port) for the
client tests. The context is large because agent CLIs send long system
prompts (Claude Code's and Codex's are 10-25k tokens)."""

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

API_KEY = "test-key-123"
MODEL_NAME = "gpt-oss-test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(extra_args=(), api_key=API_KEY):
    """Start a server; without `--store PATH` in extra_args it keeps responses
    in memory (`--store none`), never in the user's data folder. api_key=None:
    no key (for clients that cannot send one, like Codex's built-in ollama
    provider)."""
    if "--store" not in extra_args:
        extra_args = [*extra_args, "--store", "none"]
    binary = os.environ["GPT_OSS_BIN"]
    model_dir = os.environ.get("MODEL_DIR", "")
    port = free_port()
    model_args = ["--model", model_dir] if model_dir else []
    key_args = ["--api-key", api_key] if api_key else []
    args = [binary, "serve", *model_args, "--host", "127.0.0.1", "--port", str(port),
            *key_args, "--max-concurrency", "4", "--context", "65536",
            "--model-name", MODEL_NAME, *extra_args]
    log = open(os.path.join(os.environ.get("TMPDIR", "/tmp"), f"gpt-oss-clients-{port}.log"), "w+")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited early:\n{log.read()}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, base, log
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not come up in 120 s")


def stop_server(proc, log):
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    log.seek(0)
    out = log.read()
    log.close()
    assert code == 0, f"server did not shut down cleanly (exit {code}):\n{out[-3000:]}"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    # Responses in a throwaway SQLite file: the clients run against the
    # default (persisted) store, not the user's.
    store = tmp_path_factory.mktemp("store") / "responses.sqlite3"
    proc, base, log = start_server(["--store", str(store)])
    yield base
    stop_server(proc, log)


@pytest.fixture(scope="session")
def mcp_gpt_server():
    """A second server with `--mcp on` (the default one keeps it off); a
    short MCP time limit so the timeout test is quick."""
    proc, base, log = start_server(["--mcp", "on", "--mcp-timeout", "3"])
    yield base
    stop_server(proc, log)


def npm_client(env_name: str) -> str:
    """Path of an npm client installed by run.sh; a missing one fails the test
    (CI must run it), it is never skipped silently."""
    path = os.environ.get(env_name) or shutil.which(env_name.removesuffix("_BIN").lower())
    if not path or not os.path.exists(path):
        pytest.fail(f"{env_name} is not set or missing: run tests/clients/run.sh (it installs the npm clients)")
    return path
