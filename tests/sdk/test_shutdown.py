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
