"""`codex exec --oss --local-provider ollama`, unchanged, against
`gpt-oss serve` standing in for Ollama.

Codex's built-in `ollama` provider is pointed at a server with
CODEX_OSS_BASE_URL (`http://HOST:PORT/v1`; CODEX_OSS_PORT alone means
localhost). Before the first turn it checks the server like an Ollama: the
models (`/v1/models` for a `/v1` base URL, else `/api/tags`), `/api/pull`
when the model is not listed, and `/api/version` (it refuses Ollama older
than 0.13.4); then it talks the Responses API to `/v1/responses`.

That provider sends no API key and built-in providers cannot be changed in
config.toml, so this server runs without --api-key (loopback only)."""

import os
import subprocess
import tempfile

import pytest

from conftest import MODEL_NAME, npm_client, start_server, stop_server


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
        proc = subprocess.run(
            [codex, "exec", "--oss", "--local-provider", "ollama", "--skip-git-repo-check",
             "--sandbox", "read-only", "-C", work, "-m", MODEL_NAME, "say hi"],
            env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )
    output = proc.stdout + proc.stderr
    detail = (f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
              f"\nserver log:\n{server_log(log)[-3000:]}")
    # The Ollama checks passed: Codex found a server, new enough, with the model.
    assert "No running Ollama server detected" not in output, detail
    assert "is too old" not in output, detail
    assert "Pull failed" not in output and "failed to start pull" not in output, detail
    assert proc.returncode == 0, detail
