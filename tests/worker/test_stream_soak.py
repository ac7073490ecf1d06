"""Many streamed answers in a row through one Worker isolate: every one must arrive
whole. A Worker that rewrapped the peeked upstream body in a JavaScript stream stalled
now and then (about one streamed request in 3000 under `wrangler dev`: the runtime held
chunks it had received, then cancelled the request as hung); this soak caught it.

GP_WORKER_SOAK_REQUESTS sets how many (default 6000, a few seconds per thousand).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import requests

from worker_harness import WorkerStack, realistic_key, start_worker

PROXY_KEY = "gp-worker-soak-" + "3" * 32
KEY = realistic_key("AIzaSySOAK")
STREAM = "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}
ROUNDS = int(os.environ.get("GP_WORKER_SOAK_ROUNDS", "3000"))
# A streamed answer from the fake takes milliseconds; one that takes this long stalled.
STALL_SECS = 10


@pytest.fixture(scope="module")
def soak_worker(fake_url, tmp_path_factory) -> Iterator[WorkerStack]:
    stack = None
    try:
        workdir: Path = tmp_path_factory.mktemp("soak")
        stack = start_worker(fake_url, workdir, {"healthy": KEY}, [PROXY_KEY], name="gemini-proxy-soak")
        yield stack
    finally:
        if stack is not None and stack.wrangler is not None:
            stack.wrangler.stop()


def _client(url: str, count: int) -> list[str]:
    """`count` rounds, one after another: a streamed request whose client leaves after
    the first byte (closing the connection mid-stream, as a user pressing "stop"
    does), then one read whole. Returns what went wrong with each that did not arrive
    whole."""
    failures = []
    for i in range(count):
        for leave in (True, False):
            try:
                with requests.post(
                    url, headers={"x-goog-api-key": PROXY_KEY}, json=BODY, stream=True, timeout=STALL_SECS
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


def test_every_streamed_answer_arrives_whole(soak_worker):
    failures = _client(soak_worker.url + STREAM, ROUNDS)
    assert not failures, (
        f"{len(failures)} of {ROUNDS} rounds failed:\n"
        + "\n".join(failures[:5])
        + "\n"
        + soak_worker.wrangler.output()[-3000:]
    )
