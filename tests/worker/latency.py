"""The Worker's own added latency against fake-gemini, measured like the API
benchmark's concurrency-1 row: sequential requests over keep-alive connections,
direct to the fake, through a bare pass-through Worker (a few lines of JavaScript:
what `wrangler dev` and the workerd runtime cost by themselves) and through the
proxy Worker, interleaved, on the same machine. Prints a Markdown table.

    python tests/worker/latency.py [--requests 300] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker_harness import Child, clean_env, find_binary, realistic_key, start_worker  # noqa: E402

PROXY_KEY = "gp-worker-latency-" + "1" * 32
KEY = realistic_key("AIzaSyLATENCY")
BODY = {"contents": [{"parts": [{"text": "hi"}]}]}

# The baseline: forwards every request as it is (the client sends the upstream key).
PASSTHROUGH_JS = """
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    return fetch(env.GEMINI_BASE_URL + url.pathname + url.search, request);
  },
};
"""


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def timed_post(session: requests.Session, url: str, key: str, stream: bool) -> float:
    """Seconds until the whole answer (or, for a stream, its first byte) arrived."""
    start = time.perf_counter()
    with session.post(url, headers={"x-goog-api-key": key}, json=BODY, stream=stream, timeout=30) as r:
        if r.status_code != 200:
            raise RuntimeError(f"{url}: {r.status_code} {r.text[:200]}")
        if stream:
            # Not `iter_content` then `content`: after an iterator began, `content`
            # reads nothing, and closing the response hung up mid-stream.
            r.raw.read(1)
            elapsed = time.perf_counter() - start
            r.raw.read()  # the rest, so the connection is reused
            return elapsed
        r.content  # noqa: B018
        return time.perf_counter() - start


def measure(targets: list[tuple[str, str]], n: int, stream: bool) -> list[list[float]]:
    """Seconds per request for each (base URL, key), interleaved round by round."""
    path = (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
        if stream
        else "/v1beta/models/gemini-2.5-flash:generateContent"
    )
    sessions = [requests.Session() for _ in targets]
    for _ in range(30):  # warm up connections, the isolates and the JIT
        for session, (base, key) in zip(sessions, targets):
            timed_post(session, base + path, key, stream)
    samples: list[list[float]] = [[] for _ in targets]
    order = list(range(len(targets)))
    for i in range(n):
        # Rotate which goes first, so none always runs on a warmer machine.
        for t in order[i % len(order):] + order[: i % len(order)]:
            samples[t].append(timed_post(sessions[t], targets[t][0] + path, targets[t][1], stream))
    return samples


def us(seconds: float) -> int:
    return round(seconds * 1e6)


def row(name: str, direct: list[float], bare: list[float], proxy: list[float]) -> str:
    cells = []
    for p in (50, 99):
        d, b, w = (percentile(s, p) for s in (direct, bare, proxy))
        cells.append(f"{us(d)} / {us(b)} / {us(w)} | +{us(b - d)} | **+{us(w - b)}** | +{us(w - d)}")
    return f"| {name} p50 | {cells[0]} |\n| {name} p99 | {cells[1]} |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--out")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gp-worker-latency-") as tmp:
        work = Path(tmp)
        fake = Child(
            "fake-gemini",
            [str(find_binary("FAKE_GEMINI_BIN", "fake-gemini")), "--listen", "127.0.0.1:0", "--no-record"],
            clean_env(),
            work,
        )
        stacks = []
        try:
            fake_url = fake.wait_listening()
            (work / "bare.js").write_text(PASSTHROUGH_JS)
            stacks.append(start_worker(fake_url, work / "bare", name="gemini-proxy-bare", main=work / "bare.js"))
            stacks.append(
                start_worker(fake_url, work / "proxy", {"healthy": KEY}, [PROXY_KEY], name="gemini-proxy-latency")
            )
            targets = [(fake_url, KEY), (stacks[0].url, KEY), (stacks[1].url, PROXY_KEY)]
            plain = measure(targets, args.requests, stream=False)
            ttfb = measure(targets, args.requests, stream=True)
        finally:
            for stack in stacks:
                if stack.wrangler is not None:
                    stack.wrangler.stop()
            fake.stop()
    mean_added = us(statistics.mean(plain[2]) - statistics.mean(plain[1]))
    lines = [
        f"Sequential requests, {args.requests} per path after 30 warm-up, µs. direct = to fake-gemini;"
        " bare = through a pass-through JavaScript Worker under wrangler dev; proxy = through this Worker.",
        "",
        "| request | direct / bare / proxy | runtime (bare − direct) | **proxy Worker (proxy − bare)** | total |",
        "|---|---:|---:|---:|---:|",
        row("generateContent", *plain),
        row("stream, first byte", *ttfb),
        "",
        f"Mean added by the proxy Worker over the bare one (generateContent): {mean_added:+d} µs.",
    ]
    report = "\n".join(lines)
    print(report)
    if args.out:
        Path(args.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
