"""Key-pool behaviour in the Worker, read off fake-gemini's request log: failover
over rate-limited, invalid, suspended and overloaded keys, cooldowns per model, and
no key ever leaving except in the upstream header. A Worker of its own (fresh pool)."""

from __future__ import annotations

import requests

from gp_harness import FULL_TEXT, UPSTREAM_KEYS
from worker_harness import PROXY_KEYS, leaked_secrets, start_worker

ORDER = ["r429m", "invalid", "suspended", "r503", "healthy"]


def generate(stack, model: str) -> requests.Response:
    r = requests.post(
        f"{stack.url}/v1beta/models/{model}:generateContent",
        headers={"x-goog-api-key": stack.proxy_key},
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert r.json()["candidates"][0]["content"]["parts"][0]["text"] == FULL_TEXT
    return r


def keys_sent(stack, model: str) -> list[str]:
    """Names of the keys fake-gemini received for ``model``, in order."""
    by_secret = {secret: name for name, secret in stack.secrets.items()}
    return [
        by_secret.get(r["api_key"], "?")
        for r in stack.fake_requests()
        if r["path"].endswith(f"/models/{model}:generateContent")
    ]


def test_failover_then_cooldown_then_per_model(fresh_worker):
    stack = fresh_worker
    model = "gemini-2.5-flash-worker-failover"
    assert list(stack.secrets) == ORDER == list(UPSTREAM_KEYS)

    # A fresh pool starts with the least recently used key in id order: the first
    # request fails over through every broken key before the healthy one answers.
    first = generate(stack, model)
    assert keys_sent(stack, model) == ORDER
    record = stack.wait_log(first.headers["x-request-id"])
    assert record["upstream_key_ids"] == [1, 2, 3, 4, 5]
    assert (record["answered_key_id"], record["attempts"], record["status"]) == (5, 5, 200)
    assert record["error_kind"] is None

    # The next request for the model skips the cooling 429 key and the two keys
    # marked invalid; only the overloaded key (503 is not the key's fault) may be
    # tried again before the healthy one.
    second = generate(stack, model)
    again = keys_sent(stack, model)[len(ORDER):]
    assert again[-1] == "healthy", again
    assert set(again) <= {"r503", "healthy"}, again
    assert stack.wait_log(second.headers["x-request-id"])["answered_key_id"] == 5

    # Cooldowns are per model: another model may use the 429 key at once; invalid
    # keys stay out for every model.
    other = "gemini-2.5-pro-worker-failover"
    generate(stack, other)
    sent = keys_sent(stack, other)
    assert "r429m" in sent, sent
    assert not {"invalid", "suspended"} & set(sent), sent

    # Keys travel only in the header (fake-gemini refuses a key in the URL), and
    # never appear in what the Worker or wrangler printed.
    assert all(r["query"] is None or "key=" not in r["query"] for r in stack.fake_requests())
    assert not leaked_secrets(stack.output())


def test_only_broken_keys_give_a_scrubbed_error(fake_url, tmp_path):
    """With only the suspended key (Google echoes it in its 403), the client's error
    is built from that answer and still carries no key."""
    stack = start_worker(
        fake_url, tmp_path / "broken", {"suspended": UPSTREAM_KEYS["suspended"]}, PROXY_KEYS, name="gemini-proxy-broken"
    )
    try:
        r = requests.post(
            f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent",
            headers={"x-goog-api-key": stack.proxy_key},
            json={"contents": []},
            timeout=60,
        )
        assert r.status_code >= 400
        assert "suspended" in r.text, r.text
        assert not leaked_secrets(r.text), r.text
        record = stack.wait_log(r.headers["x-request-id"])
        assert record["error_kind"] is not None
        assert not leaked_secrets(stack.output())
    finally:
        if stack.wrangler is not None:
            stack.wrangler.stop()
