"""The resilience rules in the Worker (the same core as the binary, on workerd):
model fallback, SSE keep-alives while upstream is quiet, the response cache, and
empty answers retried on another key, streamed or not. Read off the Worker's log and
fake-gemini's request log. Two Workers of their own: one with two healthy keys and
the rules' vars, one whose first key answers empty."""

from __future__ import annotations

from typing import Iterator

import pytest
import requests

from gp_harness import FULL_TEXT, realistic_key
from worker_harness import PROXY_KEYS, WorkerStack, start_worker

OVERLOADED = "gemini-overloaded-worker"
FLASH = "gemini-2.5-flash"
SILENT = "gemini-2.5-flash-silent"
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}


def _worker(fake_url, workdir, secrets, name, extra_vars=None) -> Iterator[WorkerStack]:
    stack = None
    try:
        stack = start_worker(fake_url, workdir, secrets, PROXY_KEYS, extra_vars=extra_vars, name=name)
        yield stack
    finally:
        if stack is not None and stack.wrangler is not None:
            stack.wrangler.stop()


@pytest.fixture(scope="module")
def resilient(fake_url, tmp_path_factory) -> Iterator[WorkerStack]:
    yield from _worker(
        fake_url,
        tmp_path_factory.mktemp("resilient"),
        {"one": realistic_key("AIzaSyRESILIENTone"), "two": realistic_key("AIzaSyRESILIENTtwo")},
        "gemini-proxy-resilient",
        {
            "GEMINI_PROXY_FALLBACK": f"{OVERLOADED}={FLASH}",
            "GEMINI_PROXY_SSE_HEARTBEAT_SECS": "1",
            "GEMINI_PROXY_CACHE_TTL_SECS": "600",
        },
    )


@pytest.fixture(scope="module")
def empty_first(fake_url, tmp_path_factory) -> Iterator[WorkerStack]:
    yield from _worker(
        fake_url,
        tmp_path_factory.mktemp("empty"),
        {"empty": realistic_key("AIzaSy-empty-"), "good": realistic_key("AIzaSyGOODafterEMPTY")},
        "gemini-proxy-empty",
    )


def post(stack: WorkerStack, path: str, body: dict, **headers: str) -> requests.Response:
    return requests.post(
        f"{stack.url}{path}",
        headers={"x-goog-api-key": stack.proxy_key, **headers},
        json=body,
        timeout=60,
    )


def calls(stack: WorkerStack, path_end: str) -> int:
    return sum(1 for r in stack.fake_requests() if r["path"].endswith(path_end))


def test_an_overloaded_model_is_served_by_its_fallback(resilient):
    r = post(resilient, f"/v1beta/models/{OVERLOADED}:generateContent", BODY)
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == FULL_TEXT
    assert r.headers.get("x-gemini-proxy-model") == FLASH
    record = resilient.wait_log(r.headers["x-request-id"])
    assert (record["model"], record["served_model"]) == (OVERLOADED, FLASH)
    assert any(n.startswith(f"fallback {OVERLOADED} → {FLASH}") for n in record["notes"]), record["notes"]


def test_keep_alives_flow_while_upstream_is_quiet(resilient):
    # The fake's silent model is quiet for 5 s after its first chunk; with a 1 s
    # interval the Worker sends blank lines (Gemini SSE) meanwhile.
    r = requests.post(
        f"{resilient.url}/v1beta/models/{SILENT}:streamGenerateContent?alt=sse",
        headers={"x-goog-api-key": resilient.proxy_key},
        json=BODY,
        timeout=60,
        stream=True,
    )
    assert r.status_code == 200
    raw = b"".join(r.iter_content(chunk_size=None)).decode()
    assert raw.count("data: ") == 3, raw
    record = resilient.wait_log(r.headers["x-request-id"])
    assert any("keep-alive" in n for n in record["notes"]), record["notes"]
    # OpenAI streams get SSE comment lines.
    r = requests.post(
        f"{resilient.url}/v1beta/openai/chat/completions",
        headers={"authorization": f"Bearer {resilient.proxy_key}"},
        json={"model": SILENT, "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert ": keep-alive\n" in r.text, r.text


def test_an_identical_request_is_answered_from_the_cache(resilient):
    path = f"/v1beta/models/{FLASH}:countTokens"
    before = calls(resilient, ":countTokens")
    first = post(resilient, path, {"contents": [{"parts": [{"text": "cache me"}]}]})
    assert first.headers.get("x-gemini-proxy-cache") == "miss"
    resilient.wait_log(first.headers["x-request-id"])
    second = post(resilient, path, {"contents": [{"parts": [{"text": "cache me"}]}]})
    assert second.status_code == 200
    assert second.headers.get("x-gemini-proxy-cache") == "hit"
    assert second.json() == first.json()
    assert calls(resilient, ":countTokens") == before + 1, "upstream was called once"
    hit = resilient.wait_log(second.headers["x-request-id"])
    assert (hit["cache"], hit["upstream_key_ids"]) == ("hit", [])
    bypass = post(resilient, path, {"contents": [{"parts": [{"text": "cache me"}]}]}, **{"cache-control": "no-cache"})
    assert bypass.headers.get("x-gemini-proxy-cache") == "miss"
    assert calls(resilient, ":countTokens") == before + 2


def test_empty_answers_are_retried_on_another_key(empty_first):
    # A fresh pool picks the empty key first for each model; the answer is the good key's.
    r = post(empty_first, f"/v1beta/models/{FLASH}:generateContent", BODY)
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == FULL_TEXT
    record = empty_first.wait_log(r.headers["x-request-id"])
    assert (record["upstream_key_ids"], record["answered_key_id"]) == ([1, 2], 2)
    stream = post(empty_first, "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", BODY)
    assert stream.status_code == 200
    assert '{"content":{"role":"model"}' not in stream.text, stream.text
    assert stream.text.count("data: ") == 3, stream.text
    record = empty_first.wait_log(stream.headers["x-request-id"])
    assert record["upstream_key_ids"] == [1, 2]
    assert any("a stream with nothing in it" in n for n in record["notes"]), record["notes"]
