"""The web chat page of `gpt-oss serve`, driven in headless Chromium.

The demo model (built into the binary) answers arithmetic questions with a
chain of thought, so the page shows real streamed reasoning and answers.
Fixtures (conftest.py) start the servers and check that no request left the
server's origin."""

import json
import re
import time

from playwright.sync_api import expect

from conftest import API_KEY, ARTIFACTS

LAST_ASSISTANT = "#messages .turn.assistant >> nth=-1"

# Records, on every DOM change, how long the newest turn's reasoning and answer
# are and whether the reasoning panel is open: evidence of streaming that a
# final-state check could not give.
WATCH = """() => {
  window.__watch = {reasoning: [], answer: [], openWhileThinking: false, stopShown: false};
  new MutationObserver(() => {
    const turns = document.querySelectorAll('#messages .turn.assistant');
    const turn = turns[turns.length - 1];
    if (!turn) return;
    const r = turn.querySelector('details.reasoning');
    const a = turn.querySelector('.assistant-body');
    const w = window.__watch;
    const rl = r ? r.querySelector('.reasoning-text').textContent.length : 0;
    const al = a ? a.textContent.length : 0;
    if (w.reasoning[w.reasoning.length - 1] !== rl) w.reasoning.push(rl);
    if (w.answer[w.answer.length - 1] !== al) w.answer.push(al);
    if (r && r.open && al === 0 && rl > 0) w.openWhileThinking = true;
    if (!document.getElementById('stop').hidden) w.stopShown = true;
  }).observe(document.getElementById('messages'), {subtree: true, childList: true, characterData: true});
}"""


def open_chat(pages, server, **context_args):
    page = pages.new(server.base, **context_args)
    page.goto(server.base + "/")
    expect(page.locator("#app")).to_have_attribute("data-ready", "1")
    return page


def ask(page, text):
    box = page.locator("#input")
    box.fill(text)
    box.press("Enter")


def wait_done(page, timeout=60_000):
    turn = page.locator(LAST_ASSISTANT)
    expect(turn).to_have_attribute("data-status", re.compile("completed|incomplete|stopped|failed"), timeout=timeout)
    return turn


def test_chat_streams_reasoning_answer_and_keeps_the_conversation(pages, server):
    page = open_chat(pages, server)
    expect(page.locator("#model-name")).to_have_text("gpt-oss-demo")
    bodies = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/v1/responses") else None)

    # Shift+Enter is a new line, not a send.
    box = page.locator("#input")
    box.fill("Compute 6 + 7949.")
    box.press("Shift+Enter")
    assert box.input_value() == "Compute 6 + 7949.\n"
    assert bodies == []
    box.fill("Compute 6 + 7949.")

    page.evaluate(WATCH)
    box.press("Enter")
    expect(box).to_have_value("")
    turn = wait_done(page)
    expect(turn).to_have_attribute("data-status", "completed")
    expect(page.locator("#send")).to_be_visible()

    watch = page.evaluate("window.__watch")
    # Reasoning arrived in several pieces and the panel was open meanwhile.
    assert len([n for n in watch["reasoning"] if n > 0]) >= 3, watch
    assert watch["openWhileThinking"], watch
    assert watch["stopShown"], watch
    assert len([n for n in watch["answer"] if n > 0]) >= 2, watch

    reasoning = turn.locator("details.reasoning")
    answer = turn.locator(".assistant-body")
    expect(answer).to_contain_text(re.compile(r"\d"))
    # Collapsed once the answer started; expandable.
    expect(reasoning).not_to_have_attribute("open", "")
    assert not reasoning.locator(".reasoning-text").is_visible()
    reasoning.locator("summary").click()
    expect(reasoning.locator(".reasoning-text")).to_be_visible()
    assert len(reasoning.locator(".reasoning-text").inner_text()) > 20
    # Tokens per second from usage and timing.
    meta = turn.locator(".answer-meta")
    expect(meta).to_have_text(re.compile(r"^\d+ tokens · [\d.]+ tok/s · [\d.]+ s · medium effort$"))

    body = bodies[0]
    assert body["stream"] is True and body["reasoning"] == {"effort": "medium"}
    assert body["input"] == [{"type": "message", "role": "user", "content": "Compute 6 + 7949."}]

    # Switch effort: the next request carries it, plus the whole history.
    first_answer = answer.inner_text()
    page.select_option("#effort", "high")
    ask(page, "What's the product of 290 and 89?")
    turn2 = wait_done(page)
    expect(turn2).to_have_attribute("data-status", "completed")
    expect(turn2.locator(".answer-meta")).to_contain_text("high effort")
    body = bodies[1]
    assert body["reasoning"] == {"effort": "high"}
    assert [(i["role"], i["type"]) for i in body["input"]] == [
        ("user", "message"), ("assistant", "message"), ("user", "message")]
    assert body["input"][1]["content"].strip() == first_answer.strip()
    page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)
    second_answer = turn2.locator(".assistant-body").inner_text()

    # Phone width: no horizontal scrolling; the conversation list folds away.
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator("#toggle-sidebar")).to_be_visible()
    # The sidebar slides out with a 0.15 s transition: wait for it to be off screen.
    page.wait_for_function("document.querySelector('#sidebar').getBoundingClientRect().x < 0", timeout=5000)
    assert page.locator("#sidebar").bounding_box()["x"] < 0
    page.screenshot(path=str(ARTIFACTS / "chat-phone.png"))
    page.click("#toggle-sidebar")
    page.wait_for_timeout(300)
    assert page.locator("#sidebar").bounding_box()["x"] >= 0
    page.click("#scrim", position={"x": 380, "y": 400})
    page.set_viewport_size({"width": 1200, "height": 850})

    # Kept in local storage: a reload shows the same conversation, with the
    # effort setting remembered.
    page.reload()
    expect(page.locator("#app")).to_have_attribute("data-ready", "1")
    expect(page.locator("#messages .turn.user")).to_have_count(2)
    expect(page.locator("#messages .turn.assistant")).to_have_count(2)
    expect(page.locator(LAST_ASSISTANT).locator(".assistant-body")).to_have_text(second_answer)
    expect(page.locator("#effort")).to_have_value("high")
    expect(page.locator("#conversations li")).to_have_count(1)
    expect(page.locator("#conversations li.active .conv-title")).to_have_text("Compute 6 + 7949.")

    # New chat: empty page, the old conversation stays in the list.
    page.click("#new-chat")
    expect(page.locator("#messages .turn")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    page.select_option("#effort", "low")
    ask(page, "Convert 212 yards to feet.")
    wait_done(page)
    expect(page.locator("#conversations li")).to_have_count(2)
    assert bodies[-1]["input"] == [{"type": "message", "role": "user", "content": "Convert 212 yards to feet."}]
    # Back to the first conversation from the list.
    page.locator("#conversations .conv-title", has_text="Compute 6 + 7949.").click()
    expect(page.locator("#messages .turn.assistant")).to_have_count(2)


def test_stop_cancels_generation_on_the_server(pages, server):
    page = open_chat(pages, server)
    page.select_option("#effort", "high")
    turn = page.locator(LAST_ASSISTANT)
    # The demo model's longest answers: a three-digit product at high effort
    # reasons for about 300 tokens. On an idle machine it can still finish
    # before the click reaches the server; that race is not what this test
    # checks, so such a turn (completed, not stopped) is asked again.
    for attempt, question in enumerate(["What's the product of 987 and 654?",
                                        "What's the product of 876 and 543?",
                                        "What's the product of 765 and 432?"]):
        before = server.metrics()
        ask(page, question)
        # Stop as soon as the reasoning streams (checked every frame).
        page.wait_for_function(
            """() => { const r = document.querySelector('#messages .turn.assistant:last-child .reasoning-text');
                       return r && r.textContent.length > 5; }""",
            polling="raf", timeout=30_000)
        page.click("#stop")
        expect(turn).to_have_attribute("data-status", re.compile("stopped|completed"))
        if turn.get_attribute("data-status") == "stopped":
            break
        assert attempt < 2, "the answer finished before Stop, three times"
    expect(turn.locator(".answer-meta")).to_contain_text("stopped")
    expect(page.locator("#send")).to_be_visible()
    # The server cancelled the sequence: its slot is free, the cancel counted,
    # and no more tokens are generated for it.
    deadline = time.time() + 10
    while True:
        m = server.metrics()
        if m["active"] == 0 and m["cancelled_total"] >= before["cancelled_total"] + 1:
            break
        assert time.time() < deadline, f"the server did not cancel the request: {m}"
        time.sleep(0.1)
    assert m["completed_total"] == before["completed_total"], m
    generated = m["generated_tokens_total"]
    time.sleep(0.5)
    assert server.metrics()["generated_tokens_total"] == generated
    page.screenshot(path=str(ARTIFACTS / "stopped.png"))
    # The partial turn is kept, and the chat goes on.
    ask(page, "Compute 6 + 7949.")
    expect(wait_done(page)).to_have_attribute("data-status", "completed")


# A stored conversation whose every text field carries HTML. The page must
# show it as text: no element from it, no script run.
HOSTILE = {
    "id": "c_hostile",
    "title": "<img src=x onerror=\"window.__xss='title'\">",
    "created": 1,
    "updated": 2,
    "turns": [
        {"role": "user", "text": "<script>window.__xss='user'</script> <b>bold?</b>"},
        {
            "role": "assistant",
            "status": "completed",
            "effort": "low",
            "items": [
                {"type": "reasoning", "content": [{"type": "reasoning_text",
                                                   "text": "<img src=x onerror=\"window.__xss='reasoning'\">"}]},
                {"type": "function_call", "name": "<svg onload=\"window.__xss='fn'\">",
                 "arguments": "{\"html\": \"<iframe src=javascript:window.__xss='args'>\"}", "call_id": "c1"},
                {"type": "web_search_call", "status": "completed",
                 "action": {"type": "search", "query": "<script>window.__xss='query'</script>",
                            "sources": [{"url": "javascript:window.__xss='src'", "title": "<b>evil source</b>"},
                                        {"url": "https://example.org/a", "title": "good source"}]}},
                {"type": "code_interpreter_call", "code": "print('<script>x</script>')",
                 "outputs": [{"type": "logs", "logs": "<img src=x onerror=\"window.__xss='logs'\">"}]},
                {"type": "handoff_call", "model": "gpt-5<script>window.__xss='model'</script>",
                 "arguments": "{\"task\": \"explain DNA\"}", "output": "<i>remote</i> answer"},
                {"type": "message", "content": [{"type": "output_text", "text": (
                    "Here: <script>window.__xss='answer'</script> and <img src=x onerror=\"window.__xss='img'\">\n\n"
                    "**bold** and *it* and `<code>` and [bad](javascript:window.__xss='link') "
                    "and [good](https://example.org/x)\n\n"
                    "```html\n<script>window.__xss='block'</script>\n```\n\n"
                    "- item <u>one</u>\n- item two\n")}]},
            ],
        },
    ],
}


def test_model_html_is_shown_as_text_never_run(pages, server):
    # bypass_csp: the renderer alone must be safe, without the CSP's help.
    page = pages.new(server.base, bypass_csp=True)
    page.add_init_script("window.__xss = 'none';")
    page.goto(server.base + "/")
    page.evaluate("""c => {
        localStorage.setItem('gptoss.chat.conversations.v1', JSON.stringify([c]));
        localStorage.setItem('gptoss.chat.current', c.id);
    }""", HOSTILE)
    page.reload()
    expect(page.locator("#app")).to_have_attribute("data-ready", "1")
    messages = page.locator("#messages")
    expect(messages.locator(".turn.assistant")).to_have_count(1)
    page.locator("details.reasoning summary").click()
    page.wait_for_timeout(200)

    assert page.evaluate("window.__xss") == "none"
    for tag in ["script", "img", "svg", "iframe", "b", "i", "u"]:
        assert page.locator(f"#messages {tag}, #conversations {tag}").count() == 0, tag
    text = page.locator("body").inner_text()
    for literal in ["<script>window.__xss='user'</script>", "<img src=x onerror=\"window.__xss='reasoning'\">",
                    "<script>window.__xss='answer'</script>", "<script>window.__xss='block'</script>",
                    "<svg onload=\"window.__xss='fn'\">", "<script>window.__xss='query'</script>",
                    "<u>one</u>", "<b>evil source</b>"]:
        assert literal in text, literal
    expect(page.locator("#conversations .conv-title")).to_have_text(HOSTILE["title"])
    # Markdown still renders, links only to http(s).
    body = messages.locator(".assistant-body")
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("em")).to_have_text("it")
    expect(body.locator("code.inline")).to_have_text("<code>")
    expect(body.locator("pre code")).to_have_text("<script>window.__xss='block'</script>")
    expect(body.locator("li")).to_have_count(2)
    hrefs = page.eval_on_selector_all("#messages a", "as => as.map(a => a.getAttribute('href'))")
    assert hrefs and all(h.startswith("https://") for h in hrefs), hrefs
    assert "[bad](javascript:window.__xss='link')" in text
    # Tool items as cards, the handoff marked with its destination.
    cards = messages.locator(".tool-card")
    expect(cards).to_have_count(4)
    expect(cards.nth(0)).to_contain_text("Function call")
    expect(cards.nth(1)).to_contain_text("Browser · search")
    expect(cards.nth(2)).to_contain_text("Python")
    expect(cards.nth(3)).to_contain_text("sent to gpt-5<script>")
    expect(cards.nth(3)).to_contain_text("<i>remote</i> answer")
    page.screenshot(path=str(ARTIFACTS / "html-as-text.png"), full_page=True)
    assert page.evaluate("window.__xss") == "none"


def test_csp_forbids_html_sinks_and_inline_script(pages, server):
    page = open_chat(pages, server)
    # Trusted Types: assigning a string to innerHTML throws.
    outcome = page.evaluate("""() => {
        try { document.body.appendChild(document.createElement('div')).innerHTML = '<b>x</b>'; return 'assigned'; }
        catch (e) { return e.name; }
    }""")
    assert outcome == "TypeError"
    # Inline script is refused.
    outcome = page.evaluate("""() => {
        window.__inline = 'no';
        try {
            const s = document.createElement('script');
            s.textContent = "window.__inline = 'yes'";
            document.body.appendChild(s);
            return 'appended';
        } catch (e) { return e.name; }
    }""")
    assert outcome in ("TypeError", "appended")
    assert page.evaluate("window.__inline") == "no"


def test_api_key_is_asked_once_and_kept_for_the_tab(pages, key_server):
    page = pages.new(key_server.base)
    sent = []
    page.on("request", lambda r: sent.append((r.url, r.headers.get("authorization"))))
    page.goto(key_server.base + "/")
    overlay = page.locator("#key-overlay")
    expect(overlay).to_be_visible()
    page.fill("#api-key", "wrong-key")
    page.click("#key-save")
    expect(page.locator("#key-error")).to_have_text("The server refused this key.")
    expect(overlay).to_be_visible()
    page.fill("#api-key", API_KEY)
    page.press("#api-key", "Enter")
    expect(overlay).to_be_hidden()
    expect(page.locator("#model-name")).to_have_text("gpt-oss-demo")
    assert page.evaluate("sessionStorage.getItem('gptoss.chat.apiKey')") == API_KEY
    assert page.evaluate("localStorage.getItem('gptoss.chat.apiKey')") is None

    ask(page, "Compute 6 + 7949.")
    expect(wait_done(page)).to_have_attribute("data-status", "completed")
    posts = [auth for url, auth in sent if url.endswith("/v1/responses")]
    assert posts == [f"Bearer {API_KEY}"]

    # Same tab after a reload: not asked again.
    page.reload()
    expect(page.locator("#app")).to_have_attribute("data-ready", "1")
    expect(overlay).to_be_hidden()
    # A new session (fresh context): asked again.
    other = pages.new(key_server.base)
    other.goto(key_server.base + "/")
    expect(other.locator("#key-overlay")).to_be_visible()
