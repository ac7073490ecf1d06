"""SIGTERM: stop accepting, let the in-flight stream finish, flush its log record,
exit 0 — and no upstream key in anything the server printed."""

import signal
import threading

import requests

from gp_harness import leaked_secrets, realistic_key, start_proxy


def test_sigterm_finishes_in_flight_stream_and_flushes_logs(proxy_bin, fake_url, tmp_path):
    secrets = {"healthy": realistic_key("AIzaSyShutdown")}
    stack = start_proxy(
        proxy_bin, fake_url, tmp_path, secrets, name="shutdown-proxy",
        extra_env={"GEMINI_PROXY_SHUTDOWN_GRACE_SECS": "20"},
    )
    try:
        url = f"{stack.url}/v1beta/models/gemini-2.5-flash-slowstream:streamGenerateContent?alt=sse"
        chunks: list[bytes] = []
        first_chunk = threading.Event()

        def stream() -> None:
            with requests.post(url, headers={"x-goog-api-key": stack.proxy_key}, json={}, stream=True, timeout=30) as r:
                for chunk in r.iter_content(chunk_size=None):
                    chunks.append(chunk)
                    first_chunk.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first_chunk.wait(10), "the stream never started"
        stack.child.proc.send_signal(signal.SIGTERM)
        reader.join(30)
        assert stack.child.proc.wait(30) == 0
        body = b"".join(chunks).decode()
        assert body.count("data: ") == 3, body  # the whole answer, not cut at SIGTERM
        records = stack.logs()
        assert len(records) == 1 and records[0]["status"] == 200
        assert records[0]["total_tokens"] == 21 and records[0]["error_kind"] is None
        assert not leaked_secrets(stack.child.stderr_text(), list(secrets.values()))
    finally:
        stack.child.stop()


def test_streams_outliving_the_grace_are_cut_and_logged(proxy_bin, fake_url, tmp_path):
    """Grace 1 s, streams that last a minute: SIGTERM cuts them, every one is in the
    log as cut_at_shutdown, nothing is dropped, and the exit status is 0."""
    secrets = {"healthy": realistic_key("AIzaSyShutdownCut")}
    stack = start_proxy(
        proxy_bin, fake_url, tmp_path, secrets, name="shutdown-cut-proxy",
        extra_env={"GEMINI_PROXY_SHUTDOWN_GRACE_SECS": "1"},
    )
    try:
        url = f"{stack.url}/v1beta/models/gemini-2.5-flash-longstream:streamGenerateContent?alt=sse"
        started = [threading.Event() for _ in range(10)]

        def stream(started: threading.Event) -> None:
            try:
                with requests.post(url, headers={"x-goog-api-key": stack.proxy_key}, json={}, stream=True, timeout=60) as r:
                    for _ in r.iter_content(chunk_size=None):
                        started.set()
            except requests.RequestException:
                pass  # the cut: the server closed the stream mid-way

        readers = [threading.Thread(target=stream, args=(event,)) for event in started]
        for reader in readers:
            reader.start()
        assert all(event.wait(10) for event in started), "the streams never started"
        stack.child.proc.send_signal(signal.SIGTERM)
        assert stack.child.proc.wait(30) == 0, stack.child.stderr_text()
        for reader in readers:
            reader.join(30)
        records = stack.logs()
        assert len(records) == 10, records
        assert {r["error_kind"] for r in records} == {"cut_at_shutdown"}, records
        stderr = stack.child.stderr_text()
        assert "dropped" not in stderr, stderr
    finally:
        stack.child.stop()
