"""The request log without a database: one JSON line per request on the Worker's
console (what `wrangler tail` and Workers Logs show), written after the response."""

from __future__ import annotations

import requests

from gp_harness import FULL_TEXT


def call(worker, path: str, body: dict, **params) -> requests.Response:
    r = requests.post(
        worker.url + path,
        params=params,
        headers={"x-goog-api-key": worker.proxy_key},
        json=body,
        timeout=60,
    )
    assert r.status_code == 200, r.text
    return r


def test_generate_is_logged_with_tokens(worker):
    r = call(worker, "/v1beta/models/gemini-2.5-flash-worker-logs:generateContent", {"contents": []})
    record = worker.wait_log(r.headers["x-request-id"])
    assert (record["api"], record["route"], record["model"], record["stream"]) == (
        "gemini", "generateContent", "gemini-2.5-flash-worker-logs", False,
    )
    assert record["status"] == 200
    assert record["proxy_key_id"] == 1
    assert record["answered_key_id"] == worker.key_ids["healthy"]
    assert record["upstream_key_ids"][-1] == worker.key_ids["healthy"]
    assert (record["prompt_tokens"], record["candidates_tokens"], record["total_tokens"]) == (12, 7, 19)
    assert record["finish_reason"] == "STOP"
    assert record["latency_ms"] >= 0


def test_stream_is_logged_when_it_ends(worker):
    r = call(
        worker, "/v1beta/models/gemini-2.5-flash-worker-logs-stream:streamGenerateContent", {"contents": []}, alt="sse"
    )
    assert FULL_TEXT.split()[0] in r.text
    record = worker.wait_log(r.headers["x-request-id"])
    assert (record["route"], record["stream"], record["status"]) == ("streamGenerateContent", True, 200)
    assert (record["prompt_tokens"], record["candidates_tokens"], record["total_tokens"]) == (12, 9, 21)
    assert record["finish_reason"] == "STOP"
    assert record["ttfb_ms"] is not None
    assert record["error_kind"] is None


def test_openai_stream_is_logged(worker):
    r = call(
        worker,
        "/v1/chat/completions",
        {
            "model": "gemini-2.5-flash-worker-logs-openai",
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": "hi"}],
        },
    )
    record = worker.wait_log(r.headers["x-request-id"])
    assert (record["api"], record["route"], record["stream"]) == ("openai", "chat.completions", True)
    assert record["model"] == "gemini-2.5-flash-worker-logs-openai"
    assert (record["prompt_tokens"], record["total_tokens"]) == (12, 21)


def test_refusals_are_logged(worker):
    r = requests.get(worker.url + "/v1beta/models", headers={"x-goog-api-key": "gp-nope"}, timeout=30)
    assert r.status_code == 401
    record = worker.wait_log(r.headers["x-request-id"])
    assert (record["status"], record["error_kind"], record["upstream_key_ids"]) == (401, "invalid_api_key", [])
