"""The shared admission table (tests/admission/cases.json) against the Worker under
`wrangler dev`: the same cases and expectations as the native binary
(tests/sdk/test_admission.py), since both run proxy-core's one admission pipeline."""

from __future__ import annotations

from typing import Iterator

import pytest

from worker_harness import PROXY_KEYS, start_worker  # isort: skip (puts tests/sdk on sys.path)
from admission_table import CASES, MAX_BODY_MB, UPSTREAM_KEY, Target, run_case  # isort: skip


@pytest.fixture(scope="module")
def target(fake_url, tmp_path_factory) -> Iterator[Target]:
    """A Worker of its own: one healthy upstream key and the table's body limit."""
    stack = None
    try:
        stack = start_worker(
            fake_url, tmp_path_factory.mktemp("admission"), {"admission": UPSTREAM_KEY}, PROXY_KEYS,
            extra_vars={"GEMINI_PROXY_MAX_BODY_MB": MAX_BODY_MB}, name="gemini-proxy-admission",
        )
        yield Target(url=stack.url, valid_key=stack.proxy_key, fake_requests=stack.fake_requests)
    finally:
        if stack is not None and stack.wrangler is not None:
            stack.wrangler.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_admission(target, name):
    run_case(target, name)
