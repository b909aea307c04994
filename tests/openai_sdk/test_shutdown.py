"""SIGTERM while a stream is in flight: the stream ends cleanly (a final
chunk with a finish_reason, then [DONE]) and the server exits with 0."""

import signal
import threading
import time

import openai

from conftest import API_KEY, start_server


def test_sigterm_ends_in_flight_stream_cleanly():
    proc, base = start_server(["--shutdown-grace", "1"])
    client = openai.OpenAI(base_url=base + "/v1", api_key=API_KEY, max_retries=0, timeout=60)
    model = client.models.list().data[0].id
    chunks, errors = [], []

    def consume():
        try:
            stream = client.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "Hi"}], max_tokens=1900,
                reasoning_effort="none", stream=True)
            for chunk in stream:
                chunks.append(chunk)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    t = threading.Thread(target=consume)
    t.start()
    deadline = time.time() + 30
    while len(chunks) < 3 and time.time() < deadline:
        time.sleep(0.05)
    assert len(chunks) >= 3, "the stream started"
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=30)
    t.join(timeout=30)
    assert code == 0
    assert not errors, errors
    assert chunks[-1].choices[0].finish_reason is not None
