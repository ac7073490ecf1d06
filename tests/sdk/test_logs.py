"""What the proxy recorded about SDK traffic: the request log, the key states,
and what reached upstream. The module makes its own SDK calls (with model names
no other test uses), so it does not depend on other test files running first."""

from __future__ import annotations

import json
import threading
import time

import pytest

from gp_harness import FULL_TEXT, KNOWN_SECRETS, LOG_TIMEOUT, UPSTREAM_KEYS, realistic_key, leaked_secrets, start_proxy
from sdk_clients import genai_client, openai_client

GEN = "gemini-2.5-flash-logs-gen"
STREAM = "gemini-2.5-flash-logs-stream"
THINKING = "gemini-2.5-flash-thinking-logs"
OA_CHAT = "gemini-2.5-flash-logs-openai"
OA_STREAM = "gemini-2.5-flash-logs-openai-stream"
MODELS = [GEN, STREAM, THINKING, OA_CHAT, OA_STREAM]
FAILING = ["r429m", "invalid", "suspended", "r503"]


@pytest.fixture(scope="module")
def records(stack) -> dict[str, dict]:
    """Makes one SDK call per model in MODELS and returns its log record by model."""
    g = genai_client(stack.url, stack.proxy_key)
    o = openai_client(stack.url, stack.proxy_key, "/v1")

    assert g.models.generate_content(model=GEN, contents="hi").text == FULL_TEXT
    streamed = "".join(c.text or "" for c in g.models.generate_content_stream(model=STREAM, contents="hi"))
    assert streamed == FULL_TEXT
    assert g.models.generate_content(model=THINKING, contents="hi").text == FULL_TEXT
    chat = o.chat.completions.create(model=OA_CHAT, messages=[{"role": "user", "content": "hi"}])
    assert chat.choices[0].message.content == FULL_TEXT
    chunks = list(
        o.chat.completions.create(
            model=OA_STREAM,
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FULL_TEXT

    def all_logged(rows: list[dict]) -> bool:
        return set(MODELS) <= {r["model"] for r in rows}

    rows = stack.wait_logs(all_logged, f"records for {MODELS}")
    by_model = {}
    for r in rows:
        if r["model"] in MODELS:
            assert r["model"] not in by_model, f"two records for one call: {r}"
            by_model[r["model"]] = r
    return by_model


def test_records_status_proxy_key_and_answering_key(records, stack):
    healthy = stack.key_ids["healthy"]
    expected = {
        GEN: ("gemini", "generateContent", False),
        STREAM: ("gemini", "streamGenerateContent", True),
        THINKING: ("gemini", "generateContent", False),
        OA_CHAT: ("openai", "chat.completions", False),
        OA_STREAM: ("openai", "chat.completions", True),
    }
    for model, (api, route, stream) in expected.items():
        r = records[model]
        assert r["status"] == 200, r
        assert r["proxy_key_id"] == stack.proxy_key_id, r
        assert (r["api"], r["route"], r["stream"]) == (api, route, stream), r
        assert r["answered_key_id"] == healthy, r
        assert r["upstream_key_ids"][-1] == healthy, r
        assert r["attempts"] == len(r["upstream_key_ids"]), r
        assert r["error_kind"] is None and r["error_message"] is None, r


def test_token_accounting(records):
    def tokens(model):
        r = records[model]
        return (r["prompt_tokens"], r["candidates_tokens"], r["thoughts_tokens"], r["total_tokens"])

    assert tokens(GEN) == (12, 7, None, 19)
    assert records[GEN]["finish_reason"] == "STOP"
    assert tokens(STREAM) == (12, 9, None, 21)
    assert records[STREAM]["finish_reason"] == "STOP"
    assert records[STREAM]["ttfb_ms"] is not None
    assert tokens(THINKING) == (12, 7, 4, 23)
    assert tokens(OA_CHAT)[0::3] == (12, 19)
    assert tokens(OA_STREAM)[0::3] == (12, 21)


def test_failover_is_recorded(records, stack):
    """Requests that failed over list every key tried, the healthy one last."""
    failing_ids = {stack.key_ids[name] for name in FAILING}
    healthy = stack.key_ids["healthy"]
    # Consecutive requests cannot all start on the healthy key: the least
    # recently used key goes first and the 503 key never cools down.
    failed_over = [r for r in records.values() if len(r["upstream_key_ids"]) >= 2]
    assert failed_over, json.dumps(list(records.values()), indent=1)
    for r in failed_over:
        assert set(r["upstream_key_ids"][:-1]) <= failing_ids, r
        assert len(set(r["upstream_key_ids"])) == len(r["upstream_key_ids"]), r
    # The session's first request tried every key in id order; whichever test
    # made it, its record shows the whole chain ending on the healthy key.
    everything = stack.logs()
    full = [
        r for r in everything
        if r["status"] == 200
        and {stack.key_ids["invalid"], stack.key_ids["suspended"]} <= set(r["upstream_key_ids"])
        and r["answered_key_id"] == healthy
    ]
    assert full, json.dumps(everything[-5:], indent=1)


def test_broken_keys_marked_invalid(records, stack):
    deadline = time.monotonic() + LOG_TIMEOUT
    while True:
        rows = {row["id"]: row for row in stack.cli_json("keys", "list", "--json")}
        reasons = {name: rows[stack.key_ids[name]]["invalid_reason"] for name in UPSTREAM_KEYS}
        if reasons["invalid"] and reasons["suspended"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert reasons["invalid"] == "API_KEY_INVALID", reasons
    assert reasons["suspended"] == "CONSUMER_SUSPENDED", reasons
    assert reasons["healthy"] is None and reasons["r503"] is None and reasons["r429m"] is None, reasons
    # The plain table says so too.
    table = stack.cli("keys", "list").stdout
    invalid_line = next(line for line in table.splitlines() if line.split()[:1] == [str(stack.key_ids["invalid"])])
    assert "invalid" in invalid_line.split() and "API_KEY_INVALID" in invalid_line, table


def test_no_upstream_key_in_cli_output(records, stack):
    outputs = {
        "logs list --json": stack.cli("logs", "list", "--json", "--limit", "10000").stdout,
        "logs list": stack.cli("logs", "list", "--limit", "10000").stdout,
        "logs stats --json": stack.cli("logs", "stats", "--json").stdout,
        "keys list": stack.cli("keys", "list").stdout,
        "keys list --json": stack.cli("keys", "list", "--json").stdout,
        "proxy-keys list --json": stack.cli("proxy-keys", "list", "--json").stdout,
    }
    assert len(json.loads(outputs["logs list --json"])) >= len(MODELS)
    for name, text in outputs.items():
        assert not leaked_secrets(text), f"`{name}` shows an upstream key:\n{text}"
        assert stack.proxy_key not in text, f"`{name}` shows the proxy key secret"
    # Keys are listed, masked.
    listed = json.loads(outputs["keys list --json"])
    assert {row["masked"] for row in listed} == {s[:4] + "…" + s[-4:] for s in UPSTREAM_KEYS.values()}


def test_upstream_got_keys_in_header_only(records, stack):
    """Every request the fake received carried an upstream key in a header
    (`api_key` is read from headers), never `?key=`, and never the proxy key."""
    seen = stack.fake_requests()
    ours = [r for r in seen if any(m in r["path"] for m in MODELS)]
    assert ours, "the fake saw none of this module's requests"
    secrets = KNOWN_SECRETS  # this stack's keys and those of other tests' proxies
    for r in seen:
        assert r["api_key"] in secrets, r
        query = r["query"] or ""
        assert not any(p.split("=")[0] == "key" for p in query.split("&")), r
        assert stack.proxy_key not in query, r
    # OpenAI calls name their model in the body, not the path; they went to
    # Google's OpenAI-compatible path with an upstream key too.
    chats = [r for r in seen if r["path"] == "/v1beta/openai/chat/completions"]
    assert chats and all(r["api_key"] in secrets for r in chats)


def test_invalid_key_not_retried_after_refresh(proxy_bin, fake_url, tmp_path):
    """Keys in id order: invalid, hang, healthy; attempts time out after 1 s and
    the refresher reads the db every 50 ms.

    Request A marks the invalid key, then waits a second on the hang key. While
    it waits, B takes the healthy key (never used, so least recently used),
    which leaves the invalid key as the least recently used one for C. The
    proxy knows it is invalid, so C must skip it: it went upstream once, for A.
    """
    secrets = {
        "invalid": realistic_key("AIzaSy-invalid-B"),
        "hang": realistic_key("AIzaSy-hang-B"),
        "healthy": realistic_key("AIzaSyHEALTHYB"),
    }
    stack = start_proxy(
        proxy_bin, fake_url, tmp_path / "refresh", secrets, name="gemini-proxy-refresh",
        refresh_ms=50, extra_env={"GEMINI_PROXY_ATTEMPT_TIMEOUT_SECS": "1"},
    )
    try:
        client_a = genai_client(stack.url, stack.proxy_key)
        client_bc = genai_client(stack.url, stack.proxy_key)
        outcome: dict[str, object] = {}

        def request_a() -> None:
            try:
                outcome["text"] = client_a.models.generate_content(model="gemini-2.5-flash", contents="a").text
            except Exception as e:  # reported below, in the test's thread
                outcome["error"] = e

        a = threading.Thread(target=request_a)
        a.start()
        try:
            # Sync point: A reached the hang key, so the invalid key is marked.
            deadline = time.monotonic() + 10
            while not any(r["api_key"] == secrets["hang"] for r in stack.fake_requests()):
                assert time.monotonic() < deadline, "request A never reached the hang key"
                time.sleep(0.01)
            time.sleep(0.2)  # several refreshes while A waits
            for _ in range(2):  # B (healthy) and C
                assert client_bc.models.generate_content(model="gemini-2.5-flash", contents="b").text == FULL_TEXT
        finally:
            a.join(timeout=30)
        assert outcome.get("text") == FULL_TEXT, outcome
        sent_with_invalid = [r for r in stack.fake_requests() if r["api_key"] == secrets["invalid"]]
        assert len(sent_with_invalid) == 1, f"the invalid key went upstream {len(sent_with_invalid)} times"
    finally:
        stack.child.stop()
