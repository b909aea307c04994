"""Starts `gpt-oss serve` once per session on 127.0.0.1 with a free port and
hands tests an `openai` client pointed at it. The server is stopped with
SIGTERM at the end and must exit cleanly (graceful shutdown)."""

import os
import signal
import socket
import subprocess
import time
import urllib.request

import openai
import pytest

API_KEY = "test-key-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(extra_args=()):
    """Start a server; without `--store PATH` in extra_args it keeps responses
    in memory (`--store none`), never in the user's data folder."""
    if "--store" not in extra_args:
        extra_args = [*extra_args, "--store", "none"]
    binary = os.environ["GPT_OSS_BIN"]
    model_dir = os.environ["MODEL_DIR"]
    port = free_port()
    args = [binary, "serve", "--model", model_dir, "--host", "127.0.0.1", "--port", str(port),
            "--api-key", API_KEY, "--max-concurrency", "8", "--context", "2048",
            "--model-name", "gpt-oss-test",
            # GPT_OSS_SERVE_ARGS="--device gpu": the same suite against the GPU backend.
            *os.environ.get("GPT_OSS_SERVE_ARGS", "").split(), *extra_args]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early:\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(base + "/health", timeout=1) as r:
                if r.status == 200:
                    return proc, base
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not come up in 120 s")


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    # Responses in a throwaway SQLite file (the default kind of store, not the user's file).
    store = tmp_path_factory.mktemp("store") / "responses.sqlite3"
    proc, base = start_server(["--store", str(store)])
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read()
    assert code == 0, f"server did not shut down cleanly (exit {code}):\n{out[-3000:]}"


@pytest.fixture(scope="session")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="session")
def model(client):
    return client.models.list().data[0].id
