"""Session fixtures: fake Gemini and the Worker (under `wrangler dev`) in front of it.

Nothing is built here (scripts/test-worker.sh builds everything first); see
worker_harness.py. Every child process is stopped in fixture teardown, also when a
test or the fixture itself fails.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from worker_harness import PROXY_KEYS, UPSTREAM_KEYS, WorkerStack, start_worker  # isort: skip (puts tests/sdk on sys.path)
from gp_harness import fake_url  # noqa: F401 (a fixture)  # isort: skip


def _run_worker(fake_url, workdir, secrets, name) -> Iterator[WorkerStack]:
    stack = None
    try:
        stack = start_worker(fake_url, workdir, secrets, PROXY_KEYS, name=name)
        yield stack
    finally:
        if stack is not None and stack.wrangler is not None:
            stack.wrangler.stop()


@pytest.fixture(scope="session")
def worker(fake_url, tmp_path_factory) -> Iterator[WorkerStack]:
    """The shared Worker: five upstream keys, four of which fail in their own way."""
    yield from _run_worker(fake_url, tmp_path_factory.mktemp("worker"), UPSTREAM_KEYS, "gemini-proxy-test")


@pytest.fixture(scope="module")
def fresh_worker(fake_url, tmp_path_factory) -> Iterator[WorkerStack]:
    """A Worker of its own (a fresh isolate and pool) for the failover tests, whose
    first request must meet every key in id order."""
    yield from _run_worker(fake_url, tmp_path_factory.mktemp("fresh"), UPSTREAM_KEYS, "gemini-proxy-failover")


@pytest.fixture(scope="module")
def healthy_worker(fake_url, tmp_path_factory) -> Iterator[WorkerStack]:
    """A Worker of its own with only the healthy key: every answer is served on the
    first attempt (the stream soak)."""
    healthy = {"healthy": UPSTREAM_KEYS["healthy"]}
    yield from _run_worker(fake_url, tmp_path_factory.mktemp("healthy"), healthy, "gemini-proxy-healthy")
