"""`codex exec --oss --local-provider ollama`, unchanged, against
`gpt-oss serve` standing in for Ollama.

Codex's built-in `ollama` provider is pointed at a server with
CODEX_OSS_BASE_URL (`http://HOST:PORT/v1`; CODEX_OSS_PORT alone means
localhost). Before the first turn it checks the server like an Ollama
(recorded: `GET /v1/models`, `GET /api/version` — it refuses Ollama older
than 0.13.4 — `GET /api/tags`, and `POST /api/pull` when the model is not
listed); then it talks the Responses API to `/v1/responses`.

That provider sends no API key and built-in providers cannot be changed in
config.toml, so this server runs without --api-key (loopback only)."""

import json
import os
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import MODEL_NAME, npm_client, start_server, stop_server

# Ollama's checks take well under a second; the rest is the first turn.
SETUP_TIMEOUT = 120
TOTAL_TIMEOUT = 600


@pytest.fixture(scope="module")
def keyless_server():
    proc, base, log = start_server(api_key=None)
    yield base, log
    stop_server(proc, log)


def server_log(log) -> str:
    log.flush()
    log.seek(0)
    return log.read()


def test_codex_oss_with_the_ollama_provider(keyless_server):
    base, log = keyless_server
    codex = npm_client("CODEX_BIN")
    with tempfile.TemporaryDirectory() as tmp:
        home = os.path.join(tmp, "codex-home")
        work = os.path.join(tmp, "work")
        os.makedirs(home)
        os.makedirs(work)
        with open(os.path.join(home, "config.toml"), "w") as f:
            f.write('model_reasoning_effort = "low"\n')
        env = dict(os.environ, CODEX_HOME=home, HOME=tmp, NO_COLOR="1",
                   CODEX_OSS_BASE_URL=f"{base}/v1")
        env.pop("OPENAI_API_KEY", None)
        proc = subprocess.Popen(
            [codex, "exec", "--json", "--oss", "--local-provider", "ollama", "--skip-git-repo-check",
             "--sandbox", "read-only", "-C", work, "-m", MODEL_NAME, "say hi"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
        )
        events, out, err = [], [], []
        started = threading.Event()

        def read_stdout():
            for line in proc.stdout:
                out.append(line)
                if line.startswith("{"):
                    try:
                        events.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue
                    if events[-1].get("type") == "turn.started":
                        started.set()

        readers = [threading.Thread(target=read_stdout, daemon=True),
                   threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True)]
        for r in readers:
            r.start()
        t0 = time.monotonic()

        def detail():
            return (f"exit {proc.poll()}\nstdout:\n{''.join(out)[-4000:]}\nstderr:\n{''.join(err)[-4000:]}"
                    f"\nserver log:\n{server_log(log)[-3000:]}")

        try:
            # 1. The Ollama part: Codex found the server, new enough, with
            # the model, and started the turn (else it exits with an error).
            while not started.is_set() and proc.poll() is None and time.monotonic() - t0 < SETUP_TIMEOUT:
                started.wait(0.2)
            time.sleep(0.2)
            output = "".join(out) + "".join(err)
            for failure in ("No running Ollama server detected", "is too old", "Pull failed",
                            "failed to start pull", "OSS setup failed"):
                assert failure not in output, detail()
            assert started.is_set(), "Codex did not start its turn after the Ollama checks:\n" + detail()
            # 2. The turn itself, over /v1/responses.
            try:
                proc.wait(timeout=max(1, TOTAL_TIMEOUT - (time.monotonic() - t0)))
            except subprocess.TimeoutExpired:
                pytest.fail(f"the turn did not finish in {TOTAL_TIMEOUT} s:\n" + detail())
            for r in readers:
                r.join(timeout=5)
            kinds = [e.get("type") for e in events]
            assert proc.returncode == 0, detail()
            assert "turn.completed" in kinds and "turn.failed" not in kinds, detail()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
