"""Model fallback as the official SDKs meet it: a request for a model every key
answers 503 for (the fake's ``overloaded`` models) is served by its fallback, the
answer says which model served it (``x-gemini-proxy-model``), and the log records
the model asked for and the model that answered."""

from __future__ import annotations

from typing import Iterator

import pytest

from gp_harness import FULL_TEXT, UPSTREAM_KEYS, ProxyStack, start_proxy
from sdk_clients import genai_client, openai_client

OVERLOADED = "gemini-overloaded"
FLASH = "gemini-2.5-flash"


@pytest.fixture(scope="module")
def fallback_stack(proxy_bin, fake_url, tmp_path_factory) -> Iterator[ProxyStack]:
    stack = None
    try:
        stack = start_proxy(
            proxy_bin,
            fake_url,
            tmp_path_factory.mktemp("fallback"),
            {"r503": UPSTREAM_KEYS["r503"], "healthy": UPSTREAM_KEYS["healthy"]},
            name="gemini-proxy-fallback",
            # The env form: comma-separated pairs; the breaker off, so every request
            # shows the fallback taken after the model's own 503s.
            extra_env={
                "GEMINI_PROXY_FALLBACK": f"{OVERLOADED}={FLASH}, unused-a=unused-b",
                "GEMINI_PROXY_BREAKER_FAILURES": "0",
            },
        )
        yield stack
    finally:
        if stack is not None and stack.child is not None:
            stack.child.stop()


def served_records(stack: ProxyStack, count: int) -> list[dict]:
    return stack.wait_logs(
        lambda rs: sum(1 for r in rs if r.get("served_model") == FLASH) >= count,
        f"{count} records served by the fallback",
    )


def test_google_genai_is_served_by_the_fallback(fallback_stack):
    client = genai_client(fallback_stack.url, fallback_stack.proxy_key)
    response = client.models.generate_content(model=OVERLOADED, contents="hi")
    assert response.text == FULL_TEXT
    # google-genai keeps the HTTP response's headers (pinned in requirements.txt).
    headers = {k.lower(): v for k, v in (response.sdk_http_response.headers or {}).items()}
    assert headers.get("x-gemini-proxy-model") == FLASH
    streamed = "".join(c.text or "" for c in client.models.generate_content_stream(model=OVERLOADED, contents="hi"))
    assert streamed == FULL_TEXT
    records = served_records(fallback_stack, 2)
    record = next(r for r in records if r.get("served_model") == FLASH)
    assert record["model"] == OVERLOADED
    assert record["status"] == 200
    assert any(n.startswith(f"fallback {OVERLOADED} → {FLASH}") for n in record["notes"]), record["notes"]


def test_openai_is_served_by_the_fallback_and_the_header_names_it(fallback_stack):
    client = openai_client(fallback_stack.url, fallback_stack.proxy_key)
    raw = client.chat.completions.with_raw_response.create(
        model=OVERLOADED, messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers.get("x-gemini-proxy-model") == FLASH
    completion = raw.parse()
    assert completion.choices[0].message.content
    stream = client.chat.completions.create(
        model=OVERLOADED, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text
    records = served_records(fallback_stack, 4)
    openai_records = [r for r in records if r["api"] == "openai" and r.get("served_model") == FLASH]
    assert len(openai_records) >= 2
    assert all(r["model"] == OVERLOADED for r in openai_records)


@pytest.fixture(scope="module")
def heartbeat_stack(proxy_bin, fake_url, tmp_path_factory) -> Iterator[ProxyStack]:
    stack = None
    try:
        stack = start_proxy(
            proxy_bin,
            fake_url,
            tmp_path_factory.mktemp("heartbeat"),
            {"healthy": UPSTREAM_KEYS["healthy"]},
            name="gemini-proxy-heartbeat",
            extra_env={"GEMINI_PROXY_SSE_HEARTBEAT_SECS": "1"},
        )
        yield stack
    finally:
        if stack is not None and stack.child is not None:
            stack.child.stop()


# The fake's `silent` models fall quiet for 5 s after their first chunk: the proxy
# sends keep-alives meanwhile (a blank line on Gemini's SSE, which google-genai skips
# where it would fail on a comment line; `: keep-alive` on OpenAI's), and each SDK's
# stream reader skips them.
SILENT = "gemini-2.5-flash-silent"


def keep_alive_records(stack: ProxyStack, count: int) -> list[dict]:
    return stack.wait_logs(
        lambda rs: sum(1 for r in rs if any("keep-alive" in n for n in r.get("notes", []))) >= count,
        f"{count} records with keep-alive comments",
    )


def test_google_genai_streams_through_keep_alive_comments(heartbeat_stack):
    client = genai_client(heartbeat_stack.url, heartbeat_stack.proxy_key)
    chunks = list(client.models.generate_content_stream(model=SILENT, contents="hi"))
    assert "".join(c.text or "" for c in chunks) == FULL_TEXT
    assert len(chunks) == 3, "a keep-alive is no chunk"
    record = keep_alive_records(heartbeat_stack, 1)[0]
    assert record["status"] == 200 and record["error_kind"] is None


def test_openai_streams_through_keep_alive_comments(heartbeat_stack):
    client = openai_client(heartbeat_stack.url, heartbeat_stack.proxy_key)
    stream = client.chat.completions.create(
        model=SILENT, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == FULL_TEXT
    records = keep_alive_records(heartbeat_stack, 2)
    assert any(r["api"] == "openai" for r in records)
