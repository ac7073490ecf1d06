"""The shared admission table (tests/admission/cases.json) against the real
`gemini-proxy serve` binary; tests/worker/test_admission.py runs the same table
against the Worker, and proxy-core runs it against the pipeline itself."""

from __future__ import annotations

from typing import Iterator

import pytest

from admission_table import CASES, MAX_BODY_MB, UPSTREAM_KEY, Target, run_case
from gp_harness import start_proxy


@pytest.fixture(scope="module")
def target(proxy_bin, fake_url, tmp_path_factory) -> Iterator[Target]:
    """A proxy of its own: one healthy upstream key and the table's body limit."""
    stack = None
    try:
        stack = start_proxy(
            proxy_bin, fake_url, tmp_path_factory.mktemp("admission"), {"admission": UPSTREAM_KEY},
            name="gemini-proxy-admission", extra_env={"GEMINI_PROXY_MAX_BODY_MB": MAX_BODY_MB},
        )
        yield Target(url=stack.url, valid_key=stack.proxy_key, fake_requests=stack.fake_requests)
    finally:
        if stack is not None and stack.child is not None:
            stack.child.stop()


@pytest.mark.parametrize("name", list(CASES))
def test_admission(target, name):
    run_case(target, name)
