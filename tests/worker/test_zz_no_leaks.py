"""Runs last (file order): nothing the shared Worker or wrangler printed during the
whole session holds an upstream key, though the log lines are there."""

from __future__ import annotations

from worker_harness import leaked_secrets


def test_no_upstream_key_in_worker_output(worker):
    output = worker.output()
    assert len(worker.log_records()) >= 10, output[-3000:]
    assert not leaked_secrets(output), "an upstream key appeared in wrangler's output"
