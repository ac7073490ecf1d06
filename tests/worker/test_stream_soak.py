"""Streamed answers through one Worker isolate, round after round: a client that
leaves after the first byte, then one that reads the answer whole, which must end with
its finish reason. A Worker that rewrapped the peeked upstream body in a JavaScript
stream failed this about once in 2500 rounds under `wrangler dev` (the runtime held
chunks it had received, then cancelled the request as hung, or an answer ended early).

GP_WORKER_SOAK_ROUNDS sets how many rounds (default 3000, about 25 ms each).
"""

from __future__ import annotations

import os

import requests

STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}
ROUNDS = int(os.environ.get("GP_WORKER_SOAK_ROUNDS", "3000"))
# A streamed answer from the fake takes milliseconds; one that takes this long stalled.
STALL_SECS = 10


def _client(url: str, proxy_key: str, count: int) -> list[str]:
    """`count` rounds, one after another: a streamed request whose client leaves after
    the first byte (closing the connection mid-stream, as a user pressing "stop"
    does), then one read whole. Returns what went wrong with each that did not arrive
    whole."""
    failures = []
    for i in range(count):
        for leave in (True, False):
            try:
                with requests.post(
                    url, headers={"x-goog-api-key": proxy_key}, json=BODY, stream=True, timeout=STALL_SECS
                ) as r:
                    first = r.raw.read(1)
                    if leave:
                        continue
                    text = (first + r.raw.read()).decode()
                if r.status_code != 200 or '"STOP"' not in text:
                    failures.append(f"round {i}: {r.status_code} {text[:200]!r}")
            except requests.RequestException as e:
                failures.append(f"round {i} ({'left' if leave else 'whole'}): {type(e).__name__}: {e}")
    return failures


def test_every_streamed_answer_arrives_whole(healthy_worker):
    failures = _client(healthy_worker.url + STREAM, healthy_worker.proxy_key, ROUNDS)
    assert not failures, (
        f"{len(failures)} of {ROUNDS} rounds failed:\n"
        + "\n".join(failures[:5])
        + "\n"
        + healthy_worker.wrangler.output()[-3000:]
    )
