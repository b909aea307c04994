"""OpenAI's Codex CLI, unchanged, against `gpt-oss serve` as a custom
Responses provider (its default tools: functions, a `namespace`, hosted
`web_search`; `store: false` with `reasoning.encrypted_content`)."""

import json
import os
import subprocess
import tempfile

from conftest import API_KEY, MODEL_NAME, npm_client


def codex_home(base: str, tmp: str) -> str:
    home = os.path.join(tmp, "codex-home")
    os.makedirs(home, exist_ok=True)
    with open(os.path.join(home, "config.toml"), "w") as f:
        f.write(
            f'''model = "{MODEL_NAME}"
model_provider = "gptoss"
model_reasoning_effort = "low"

[model_providers.gptoss]
name = "gpt-oss-rs"
base_url = "{base}/v1"
wire_api = "responses"
env_key = "GPTOSS_TEST_KEY"
request_max_retries = 0
stream_max_retries = 0
'''
        )
    return home


def run_codex(server: str, prompt: str, timeout: int = 600):
    codex = npm_client("CODEX_BIN")
    with tempfile.TemporaryDirectory() as tmp:
        work = os.path.join(tmp, "work")
        os.makedirs(work)
        env = dict(os.environ, CODEX_HOME=codex_home(server, tmp), GPTOSS_TEST_KEY=API_KEY,
                   HOME=tmp, NO_COLOR="1")
        proc = subprocess.run(
            [codex, "exec", "--json", "--skip-git-repo-check", "--sandbox", "read-only", "-C", work, prompt],
            env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    events = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return proc, events


def test_codex_exec_answers_through_the_responses_api(server):
    proc, events = run_codex(server, "What is 2 + 3?")
    detail = f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, detail
    kinds = [e.get("type") for e in events]
    assert "turn.completed" in kinds, detail
    assert not any(k in ("turn.failed", "error") for k in kinds), detail
    # The turn produced at least one well-formed item: an agent message or
    # a tool call Codex ran (the demo model may call a tool or decline).
    items = [e.get("item", {}) for e in events if e.get("type") == "item.completed"]
    assert items, detail
    messages = [i for i in items if i.get("type") == "agent_message"]
    for m in messages:
        assert "<|" not in m.get("text", ""), detail
