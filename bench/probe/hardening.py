#!/usr/bin/env python3
"""Hardening probes: the figures of the hardening issue, measured against a real
`gemini-proxy serve` in front of the real `fake-gemini`.

    python3 bench/probe/hardening.py --proxy-bin PATH --fake-bin PATH [--only NAME,...] [--json OUT]

Each probe starts its own fake-gemini and its own proxy (fresh SQLite database in a
temp dir, default settings unless the probe says otherwise), measures, and stops
both. One line per probe is printed as it finishes, then a markdown table.

Python 3 standard library only. Processes are started and stopped by
tests/sdk/gp_harness.py (pytest and requests are replaced by small stand-ins when
they are not installed: this script uses neither).
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import resource
import select
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import types
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "tests" / "sdk"))


def _install_stand_ins() -> None:
    """gp_harness imports pytest and requests at module level; this script needs
    neither, so stand in for them when they are missing."""
    try:
        import pytest  # noqa: F401
    except ImportError:
        stub = types.ModuleType("pytest")

        def fixture(*args, **kwargs):
            if args and callable(args[0]):
                return args[0]
            return lambda f: f

        def fail(msg="", pytrace=True):
            raise RuntimeError(msg)

        stub.fixture = fixture
        stub.fail = fail
        sys.modules["pytest"] = stub
    try:
        import requests  # noqa: F401
    except ImportError:
        stub = types.ModuleType("requests")

        def _missing(*args, **kwargs):
            raise RuntimeError("the requests package is not installed")

        stub.get = stub.post = _missing
        sys.modules["requests"] = stub


_install_stand_ins()
import gp_harness as H  # noqa: E402

# ---------------------------------------------------------------------------
# Children: every child gets RLIMIT_NOFILE soft = 1024 (the usual default the
# issue is about), whatever this process raised its own limit to.

CHILD_NOFILE = 1024
_harness_preexec = H._die_with_parent


def _child_preexec() -> None:
    _harness_preexec()  # PR_SET_PDEATHSIG: children die with this process
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = CHILD_NOFILE if hard == resource.RLIM_INFINITY else min(CHILD_NOFILE, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


# Child.__init__ looks the name up in the module at call time.
H._die_with_parent = _child_preexec

LIVE_CHILDREN: list = []
LIVE_SOCKETS: list[socket.socket] = []
_live_lock = threading.Lock()


def track_socket(s: socket.socket) -> socket.socket:
    with _live_lock:
        LIVE_SOCKETS.append(s)
    return s


def close_quietly(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


def close_all_sockets() -> None:
    with _live_lock:
        socks = list(LIVE_SOCKETS)
        LIVE_SOCKETS.clear()
    for s in socks:
        close_quietly(s)


def stop_all_children() -> None:
    while LIVE_CHILDREN:
        child = LIVE_CHILDREN.pop()
        try:
            child.stop()
        except Exception as e:  # keep stopping the others
            print(f"  (could not stop {child.name}: {e})", file=sys.stderr)


def raise_own_nofile(want: int = 8192) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------
# Settings

def serve_defaults(proxy_bin: Path) -> dict[str, int]:
    """Defaults of the flags gp_harness.start_proxy overrides, read from this
    build's `serve --help`, so "default settings" follow the build under test."""
    found: dict[str, int] = {}
    try:
        text = subprocess.run(
            [str(proxy_bin), "serve", "--help"], env=H.clean_env(), capture_output=True,
            text=True, timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        text = ""
    for flag in ("shutdown-grace-secs", "refresh-ms"):
        at = text.find(f"--{flag}")
        m = re.search(r"\[default: (\d+)\]", text[at:]) if at >= 0 else None
        if m:
            found[flag] = int(m.group(1))
    # Fallbacks: proxy_core::defaults at the time of writing.
    found.setdefault("shutdown-grace-secs", 30)
    found.setdefault("refresh-ms", 2000)
    return found


HEALTHY_KEY = H.realistic_key("AIzaSyHEALTHY")
HANG_KEY = H.realistic_key("AIzaSy-hang-")
BODY = b'{"contents":[{"parts":[{"text":"Hello"}]}]}'
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


class Ctx:
    """Per-run settings and the per-probe stack factory."""

    def __init__(self, args, tmp_root: Path):
        self.proxy_bin = Path(args.proxy_bin).resolve()
        self.fake_bin = Path(args.fake_bin).resolve()
        self.tmp_root = tmp_root
        self.defaults = serve_defaults(self.proxy_bin)

    def start(self, probe: str, secrets: dict[str, str] | None = None, env: dict[str, str] | None = None,
              upstream_via=None) -> "Stack":
        """fake-gemini + proxy for one probe. ``upstream_via(fake_url) -> url`` may put
        something between the proxy and the fake."""
        workdir = self.tmp_root / probe
        workdir.mkdir(parents=True, exist_ok=True)
        fake = H.Child("fake-gemini", [str(self.fake_bin), "--listen", "127.0.0.1:0"], H.clean_env(), workdir)
        LIVE_CHILDREN.append(fake)
        fake_url = fake.wait_listening()
        upstream = upstream_via(fake_url) if upstream_via else fake_url
        settings = {
            # start_proxy sets test values for these two; put the build's defaults back.
            "GEMINI_PROXY_SHUTDOWN_GRACE_SECS": str(self.defaults["shutdown-grace-secs"]),
        }
        settings.update(env or {})
        stack = H.start_proxy(
            self.proxy_bin, upstream, workdir, secrets or {"healthy": HEALTHY_KEY},
            refresh_ms=self.defaults["refresh-ms"], extra_env=settings,
        )
        LIVE_CHILDREN.append(stack.child)
        return Stack(stack, fake, fake_url, workdir)


class Stack:
    def __init__(self, stack, fake, fake_url: str, workdir: Path):
        self.s = stack
        self.fake = fake
        self.fake_url = fake_url
        self.workdir = workdir
        host, port = stack.url.removeprefix("http://").rsplit(":", 1)
        self.addr = (host, int(port))

    @property
    def proc(self) -> subprocess.Popen:
        return self.s.child.proc

    @property
    def key(self) -> str:
        return self.s.proxy_key

    def stop(self) -> None:
        for child in (self.s.child, self.fake):
            try:
                child.stop()
            finally:
                if child in LIVE_CHILDREN:
                    LIVE_CHILDREN.remove(child)

    def stderr(self) -> str:
        try:
            return self.s.child.stderr_path.read_text("utf-8", "replace")
        except OSError as e:
            return f"<cannot read stderr: {e}>"

    def terminate_and_wait(self, timeout: float) -> tuple[int | None, float, bool]:
        """SIGTERM the proxy; (exit code, seconds to exit, killed after timeout)."""
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
            return code, time.monotonic() - t0, False
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return self.proc.returncode, time.monotonic() - t0, True

    def rss_kib(self) -> int | None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def log_rows(self, where: str = "1") -> int | None:
        return query_one(self.s.db, f"SELECT COUNT(*) FROM request_logs WHERE {where}")

    def log_breakdown(self) -> list:
        return query_all(self.s.db, "SELECT status, error_kind, COUNT(*) FROM request_logs "
                                    "GROUP BY status, error_kind ORDER BY 3 DESC")

    def fake_calls(self, path_suffix: str) -> int | None:
        try:
            with urllib.request.urlopen(f"{self.fake_url}/__fake/requests", timeout=10) as r:
                recorded = json.load(r)
        except (OSError, ValueError):
            return None
        return sum(1 for req in recorded if req.get("path", "").endswith(path_suffix))

    def db_bytes(self) -> int:
        """Database file plus its WAL (what the log occupies on disk)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(str(self.s.db) + suffix)
            except OSError:
                pass
        return total


def query_one(db: Path, sql: str):
    rows = query_all(db, sql)
    return rows[0][0] if rows else None


def query_all(db: Path, sql: str) -> list:
    try:
        conn = sqlite3.connect(str(db), timeout=10)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()
    except sqlite3.Error as e:
        print(f"  (sqlite: {e})", file=sys.stderr)
        return []


# ---------------------------------------------------------------------------
# Raw HTTP/1.1 (every read has a timeout)

def request_bytes(method: str, path: str, key: str | None, body: bytes = BODY, close: bool = True,
                  extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    if key is not None:
        head += f"x-goog-api-key: {key}\r\n"
    head += f"content-length: {len(body)}\r\n"
    if close:
        head += "connection: close\r\n"
    head += extra + "\r\n"
    return head.encode() + body


class Reader:
    """Reads HTTP/1.1 responses from one socket with a deadline per read."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("deadline")
        self.sock.settimeout(min(left, 5.0))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True  # nothing yet; caller loops until the deadline
        if not data:
            return False
        self.buf += data
        return True

    def response(self, deadline: float) -> tuple[int, dict[str, str], bytes]:
        """One whole response (content-length, chunked, or until close)."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill(deadline):
                raise ConnectionError("closed before a response head")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(self.buf) < n:
                if not self._fill(deadline):
                    raise ConnectionError("closed mid-body")
            body, self.buf = self.buf[:n], self.buf[n:]
        elif "chunked" in headers.get("transfer-encoding", ""):
            while b"0\r\n\r\n" not in self.buf:
                if not self._fill(deadline):
                    raise ConnectionError("closed mid-body")
            end = self.buf.index(b"0\r\n\r\n") + 5
            body, self.buf = self.buf[:end], self.buf[end:]
        else:
            while self._fill(deadline):
                pass
            body, self.buf = self.buf, b""
        return status, headers, body


def one_request(addr, raw: bytes, timeout: float) -> dict:
    """A fresh connection, one request, its answer; never raises."""
    t0 = time.monotonic()
    deadline = t0 + timeout
    out: dict = {"status": None}
    s = None
    try:
        s = socket.create_connection(addr, timeout=timeout)
        s.settimeout(max(0.1, deadline - time.monotonic()))
        s.sendall(raw)
        status, _, body = Reader(s).response(deadline)
        out.update(status=status, body=body[:300].decode("utf-8", "replace"))
    except (OSError, ValueError) as e:
        out["error"] = f"{type(e).__name__}: {e}"
    finally:
        if s is not None:
            close_quietly(s)
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out


def poll_state(s: socket.socket) -> str:
    """Without blocking: 'closed' (EOF or reset), 'answered' (bytes waiting, still
    open) or 'open'."""
    got = False
    try:
        while True:
            data = s.recv(65536, socket.MSG_DONTWAIT)
            if not data:
                return "closed"
            got = True
    except (BlockingIOError, InterruptedError):
        return "answered" if got else "open"
    except ConnectionResetError:
        return "closed"
    except OSError as e:
        return "closed" if e.errno in (errno.ECONNRESET, errno.EPIPE, errno.ENOTCONN) else f"error {e.errno}"


def status_of(data: bytes) -> str:
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return m.group(1).decode() if m else ("garbage" if data else "none")


def accept_queue(port: int) -> int | None:
    """Connections waiting in the accept queue of the socket listening on
    127.0.0.1:port (rx_queue of its LISTEN line in /proc/net/tcp)."""
    want = f"0100007F:{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want and fields[3] == "0A":
                    return int(fields[4].split(":")[1], 16)
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def connect_paced(addr, n: int, timeout: float, batch: int = 32) -> tuple[list[socket.socket], dict[str, int]]:
    """n connections, ``batch`` at a time, each batch once the listener's accept
    queue is empty (or after 0.2 s, when the server stopped accepting): connecting faster
    than the server accepts overflows the queue, and the overflowing handshakes
    end half-open (the client thinks it is connected, the server never heard of
    it), which would not load the server at all."""
    socks: list[socket.socket] = []
    failures: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    while len(socks) + sum(failures.values()) < n and time.monotonic() < deadline:
        wait_until = time.monotonic() + 0.2
        while time.monotonic() < wait_until:
            q = accept_queue(addr[1])
            if not q:
                break
            time.sleep(0.005)
        k = min(batch, n - len(socks) - sum(failures.values()))
        got, failed = connect_many(addr, k, max(0.1, deadline - time.monotonic()))
        socks += got
        for name, count in failed.items():
            failures[name] = failures.get(name, 0) + count
    return socks, failures


def connect_many(addr, n: int, timeout: float) -> tuple[list[socket.socket], dict[str, int]]:
    """n non-blocking connects at once, bounded by ``timeout`` in total."""
    pending: dict[int, socket.socket] = {}
    failures: dict[str, int] = {}
    poller = select.poll()
    for _ in range(n):
        try:
            s = track_socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except OSError as e:
            failures[f"socket() {errno.errorcode.get(e.errno, e.errno)}"] = failures.get(
                f"socket() {errno.errorcode.get(e.errno, e.errno)}", 0) + 1
            continue
        s.setblocking(False)
        rc = s.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            failures[errno.errorcode.get(rc, str(rc))] = failures.get(errno.errorcode.get(rc, str(rc)), 0) + 1
            close_quietly(s)
            continue
        pending[s.fileno()] = s
        poller.register(s.fileno(), select.POLLOUT)
    connected: list[socket.socket] = []
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for fd, _ in poller.poll(max(1, int((deadline - time.monotonic()) * 1000))):
            s = pending.pop(fd, None)
            if s is None:
                continue
            poller.unregister(fd)
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                name = errno.errorcode.get(err, str(err))
                failures[name] = failures.get(name, 0) + 1
                close_quietly(s)
            else:
                connected.append(s)
    if pending:
        failures["connect still pending"] = len(pending)
        for s in pending.values():
            close_quietly(s)
    return connected, failures


# ---------------------------------------------------------------------------
# A relay that makes fake-gemini's streams last: fake-gemini has no long-stream
# scenario (`slowstream` waits 300 ms before each of its 3 chunks, ~0.9 s in all),
# so the stream probe puts this between proxy and fake. Bytes pass through
# unchanged; in each upstream->proxy direction, after the first SSE event
# (`data: `) has been passed on, the rest is held for `hold_secs`.

class HoldingRelay:
    def __init__(self, hold_secs: float):
        self.hold_secs = hold_secs
        self.stop = threading.Event()
        self.held = 0
        self._lock = threading.Lock()
        self.listener = track_socket(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(512)
        self.listener.settimeout(0.5)
        self.upstream = None
        self.threads: list[threading.Thread] = []

    def url_for(self, fake_url: str) -> str:
        host, port = fake_url.removeprefix("http://").rsplit(":", 1)
        self.upstream = (host, int(port))
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return "http://%s:%d" % self.listener.getsockname()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                down, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            track_socket(down)
            try:
                up = track_socket(socket.create_connection(self.upstream, timeout=5))
            except OSError:
                close_quietly(down)
                continue
            for src, dst, hold in ((down, up, False), (up, down, True)):
                t = threading.Thread(target=self._pump, args=(src, dst, hold), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket, hold: bool) -> None:
        src.settimeout(1.0)
        seen, tail = False, b""
        try:
            while not self.stop.is_set():
                try:
                    data = src.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                dst.sendall(data)
                if hold and not seen and b"data: " in tail + data:
                    seen = True
                    with self._lock:
                        self.held += 1
                    self.stop.wait(self.hold_secs)
                tail = data[-8:]
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        close_quietly(self.listener)


# ---------------------------------------------------------------------------
# Probes. Each returns {"figure": str, "details": dict}; `measured` is the table's
# middle column.

PROBES: dict[str, dict] = {}


def probe(name: str, measured: str):
    def register(fn):
        PROBES[name] = {"fn": fn, "measured": measured}
        return fn
    return register


@probe("idle_connections",
       "1,100 silent TCP connections (proxy at RLIMIT_NOFILE 1024), then one valid generateContent")
def idle_connections(ctx: Ctx) -> dict:
    n, own = 1100, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if own != resource.RLIM_INFINITY and own < n + 100:
        return {"figure": f"not run: this process may open only {own} files", "details": {}}
    st = ctx.start("idle_connections")
    try:
        proxy_limit = None
        try:
            with open(f"/proc/{st.proc.pid}/limits") as f:
                for line in f:
                    if line.startswith("Max open files"):
                        proxy_limit = int(line.split()[3])
        except (OSError, ValueError, IndexError):
            pass
        fds_before = open_fds(st.proc.pid)
        t_connect = time.monotonic()
        socks, failures = connect_paced(st.addr, n, timeout=20)
        opened = time.monotonic()
        fds_connected, queue_connected = open_fds(st.proc.pid), accept_queue(st.addr[1])
        result: dict = {}
        worker = threading.Thread(
            target=lambda: result.update(one_request(st.addr, request_bytes("POST", GENERATE, st.key), 30.0)),
            daemon=True)
        worker.start()
        time.sleep(max(0.0, opened + 20 - time.monotonic()))
        proxy_fds, queue_20s = open_fds(st.proc.pid), accept_queue(st.addr[1])
        states: dict[str, int] = {}
        for s in socks:
            state = poll_state(s)
            states[state] = states.get(state, 0) + 1
        worker.join(35)
        for s in socks:
            close_quietly(s)
        answered = result.get("status") is not None
        closed = states.get("closed", 0)
        figure = (f"request {'answered ' + str(result['status']) if answered else 'NOT answered'}"
                  f" after {result.get('seconds', '?')} s; {closed}/{len(socks)} idle closed after 20 s")
        figure += f"; proxy at {proxy_fds}/{proxy_limit} fds, {queue_20s} connections still in its accept queue at 20 s"
        if len(socks) < n:
            figure += f" (only {len(socks)} of {n} connected: {failures})"
        return {"figure": figure, "details": {
            "connected": len(socks), "connect_failures": failures, "proxy_nofile_soft": proxy_limit,
            "connect_seconds": round(opened - t_connect, 2),
            "proxy_open_fds": {"before": fds_before, "after_connect": fds_connected, "at_20s": proxy_fds},
            "accept_queue": {"after_connect": queue_connected, "at_20s": queue_20s},
            "request": result, "idle_after_20s": states,
        }}
    finally:
        close_all_sockets()
        st.stop()


@probe("half_headers_shutdown",
       "20 connections with half a request head, then SIGTERM (--shutdown-grace-secs 30)")
def half_headers_shutdown(ctx: Ctx) -> dict:
    grace = 30
    st = ctx.start("half_headers_shutdown", env={"GEMINI_PROXY_SHUTDOWN_GRACE_SECS": str(grace)})
    try:
        half = (f"POST {GENERATE} HTTP/1.1\r\nHost: x\r\n").encode()
        socks = []
        for _ in range(20):
            s = track_socket(socket.create_connection(st.addr, timeout=5))
            s.sendall(half)
            socks.append(s)
        time.sleep(1.0)  # let the proxy read them
        code, secs, killed = st.terminate_and_wait(timeout=grace + 15)
        states: dict[str, int] = {}
        for s in socks:
            state = poll_state(s)
            states[state] = states.get(state, 0) + 1
        figure = (f"killed after {secs:.1f} s without exiting" if killed
                  else f"exited {secs:.1f} s after SIGTERM (code {code})")
        return {"figure": figure, "details": {
            "seconds_to_exit": round(secs, 2), "exit_code": code, "killed": killed, "grace_secs": grace,
            "clients_after_exit": states,
        }}
    finally:
        close_all_sockets()
        st.stop()


@probe("stalled_bodies_memory",
       "20 clients send 62,000,000 of 63,000,000 declared body bytes, then stall 20 s; proxy RSS")
def stalled_bodies_memory(ctx: Ctx) -> dict:
    clients, declared, sent_target = 20, 63_000_000, 62_000_000
    st = ctx.start("stalled_bodies_memory")
    samples: list[tuple[float, int]] = []
    sampling = threading.Event()
    stop = threading.Event()
    t_start = time.monotonic()

    def sample() -> None:
        while not sampling.is_set():
            rss = st.rss_kib()
            if rss is not None:
                samples.append((time.monotonic() - t_start, rss))
            sampling.wait(0.5)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    state = [{"sent": 0, "send_error": None, "data": b"", "eof": False, "read_error": None} for _ in range(clients)]
    socks: list[socket.socket] = []
    threads: list[threading.Thread] = []
    chunk = memoryview(b"x" * (1 << 20))

    def send(i: int, s: socket.socket) -> None:
        head = (f"POST {GENERATE} HTTP/1.1\r\nHost: x\r\nx-goog-api-key: {st.key}\r\n"
                f"content-type: application/json\r\ncontent-length: {declared}\r\n\r\n").encode()
        deadline = time.monotonic() + 120
        try:
            s.sendall(head)
            while state[i]["sent"] < sent_target and not stop.is_set():
                if time.monotonic() > deadline:
                    state[i]["send_error"] = "send deadline (120 s) passed"
                    return
                want = min(len(chunk), sent_target - state[i]["sent"])
                try:
                    state[i]["sent"] += s.send(chunk[:want])
                except socket.timeout:
                    continue
        except OSError as e:
            state[i]["send_error"] = f"{type(e).__name__}: {e}"

    def read(i: int, s: socket.socket) -> None:
        while not stop.is_set():
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            except OSError as e:
                state[i]["read_error"] = f"{type(e).__name__}: {e}"
                return
            if not data:
                state[i]["eof"] = True
                return
            if len(state[i]["data"]) < 4096:
                state[i]["data"] += data

    try:
        for i in range(clients):
            s = track_socket(socket.create_connection(st.addr, timeout=5))
            s.settimeout(1.0)
            socks.append(s)
            for fn in (send, read):
                t = threading.Thread(target=fn, args=(i, s), daemon=True)
                t.start()
                threads.append(t)
        senders = threads[0::2]
        for t in senders:
            t.join(max(0.1, t_start + 130 - time.monotonic()))
        sent_at = time.monotonic()
        fully_sent = sum(1 for c in state if c["sent"] >= sent_target)
        time.sleep(20)
        stall_end = time.monotonic()
        peak = max((r for t, r in samples), default=None)
        peak_stall = max((r for t, r in samples if t >= sent_at - t_start), default=None)
        rss_end_stall = st.rss_kib()
        stop.set()
        for s in socks:
            close_quietly(s)
        for t in threads:
            t.join(5)
        time.sleep(10)
        rss_after = st.rss_kib()
        sampling.set()
        sampler.join(2)
        statuses: dict[str, int] = {}
        for c in state:
            key = status_of(c["data"])
            statuses[key] = statuses.get(key, 0) + 1
        mib = lambda kib: None if kib is None else round(kib / 1024, 1)  # noqa: E731
        figure = (f"peak RSS {mib(peak)} MiB (stalled: {mib(peak_stall)} MiB), "
                  f"{mib(rss_after)} MiB 10 s after close; answers: "
                  + ", ".join(f"{k}×{v}" for k, v in sorted(statuses.items())))
        if fully_sent < clients:
            figure += f"; only {fully_sent}/{clients} sent all 62,000,000 bytes"
        return {"figure": figure, "details": {
            "peak_rss_mib": mib(peak), "peak_rss_while_stalled_mib": mib(peak_stall),
            "rss_end_of_stall_mib": mib(rss_end_stall), "rss_10s_after_close_mib": mib(rss_after),
            "rss_at_start_mib": mib(samples[0][1]) if samples else None,
            "send_seconds": round(sent_at - t_start, 1), "stall_seconds": round(stall_end - sent_at, 1),
            "clients_fully_sent": fully_sent, "statuses": statuses,
            "send_errors": sorted({c["send_error"] for c in state if c["send_error"]}),
            "bytes_sent": [c["sent"] for c in state],
            "first_answer": next((c["data"][:200].decode("latin-1") for c in state if c["data"]), None),
            "rss_samples_mib": [(round(t, 1), mib(r)) for t, r in samples[::4]],
        }}
    finally:
        stop.set()
        sampling.set()
        close_all_sockets()
        st.stop()


@probe("streams_at_shutdown",
       "50 SSE streams in flight at SIGTERM (--shutdown-grace-secs 2); exit code, 'dropped' warnings, log rows")
def streams_at_shutdown(ctx: Ctx) -> dict:
    n, grace = 50, 2
    model = "gemini-2.5-flash-slowstream"
    relay = HoldingRelay(hold_secs=120)
    st = ctx.start("streams_at_shutdown", env={"GEMINI_PROXY_SHUTDOWN_GRACE_SECS": str(grace)},
                   upstream_via=relay.url_for)
    try:
        path = f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
        first = [None] * n
        socks: list = [None] * n
        errors: list = [None] * n

        def stream(i: int) -> None:
            t0 = time.monotonic()
            try:
                s = track_socket(socket.create_connection(st.addr, timeout=10))
                socks[i] = s
                s.sendall(request_bytes("POST", path, st.key, close=False))
                buf, deadline = b"", t0 + 20
                while time.monotonic() < deadline:
                    s.settimeout(max(0.1, min(2.0, deadline - time.monotonic())))
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        errors[i] = "closed before the first event"
                        return
                    buf += data
                    if b"\r\n\r\n" in buf and b"data: " in buf.split(b"\r\n\r\n", 1)[1]:
                        first[i] = time.monotonic() - t0
                        return
                errors[i] = "no first event within 20 s"
            except OSError as e:
                errors[i] = f"{type(e).__name__}: {e}"

        threads = [threading.Thread(target=stream, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(25)
        started = sum(1 for f in first if f is not None)
        if started < n:
            note = f"only {started}/{n} streams got their first event; SIGTERM anyway"
        else:
            note = None
        code, secs, killed = st.terminate_and_wait(timeout=grace + 20)
        clients: dict[str, int] = {}
        for s in socks:
            if s is not None:
                state = poll_state(s)
                clients[state] = clients.get(state, 0) + 1
        err = re.sub(r"\x1b\[[0-9;]*m", "", st.stderr())  # tracing colours even into a file
        dropped_lines = [l for l in err.splitlines() if "dropped" in l.lower()]
        dropped_counts = [int(m) for l in dropped_lines for m in re.findall(r"\bdropped=(\d+)", l)]
        lost_counts = [int(m) for l in dropped_lines for m in re.findall(r"\blost=(\d+)", l)]
        rows = st.log_rows("stream = 1")
        figure = (f"exit code {code}{' (killed)' if killed else ''} after {secs:.1f} s; "
                  f"{len(dropped_lines)} 'dropped' warnings; {rows}/{n} streams have a log row")
        if note:
            figure += f" ({note})"
        return {"figure": figure, "details": {
            "streams_started": started, "exit_code": code, "seconds_to_exit": round(secs, 2), "killed": killed,
            "dropped_warning_lines": len(dropped_lines), "max_dropped_count": max(dropped_counts, default=None),
            "max_lost_count": max(lost_counts, default=None), "dropped_lines": dropped_lines[:10],
            "stream_rows": rows, "rows": st.log_breakdown(), "clients_after_exit": clients,
            "first_event_seconds_max": round(max((f for f in first if f is not None), default=0), 3),
            "stream_errors": sorted({e for e in errors if e}),
            "how": ("fake-gemini has no stream longer than ~0.9 s (`slowstream`: 300 ms before each of 3 "
                    "chunks), so a relay between proxy and fake passes each response until its first SSE "
                    "event through and holds the rest for 120 s; model " + model),
            "responses_held_by_relay": relay.held,
        }}
    finally:
        relay.close()
        close_all_sockets()
        st.stop()


@probe("disconnect_before_answer",
       "20 requests on a -hang- upstream key, each client gone 0.5 s after sending; after 10 s")
def disconnect_before_answer(ctx: Ctx) -> dict:
    n = 20
    st = ctx.start("disconnect_before_answer", secrets={"hang": HANG_KEY})
    try:
        errors: list = []

        def client() -> None:
            try:
                s = track_socket(socket.create_connection(st.addr, timeout=5))
                s.sendall(request_bytes("POST", GENERATE, st.key, close=False))
                time.sleep(0.5)
                close_quietly(s)
            except OSError as e:
                errors.append(f"{type(e).__name__}: {e}")

        t0 = time.monotonic()
        threads = [threading.Thread(target=client, daemon=True) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        time.sleep(max(0.0, t0 + 10.5 - time.monotonic()))
        upstream = st.fake_calls(":generateContent")
        rows = st.log_rows()
        figure = f"{upstream} upstream calls seen by fake-gemini, {rows} request-log rows"
        return {"figure": figure, "details": {
            "upstream_calls": upstream, "log_rows": rows, "rows": st.log_breakdown(),
            "client_errors": errors,
            "how": "upstream key with fake-gemini's `-hang-` marker: it records the call, then waits 120 s",
        }}
    finally:
        close_all_sockets()
        st.stop()


@probe("refusal_flood",
       "10 s of invalid-proxy-key requests from 8 keep-alive threads; log rows and SQLite growth")
def refusal_flood(ctx: Ctx) -> dict:
    threads_n, duration = 8, 10.0
    st = ctx.start("refusal_flood")
    try:
        time.sleep(0.5)
        rows_before = st.log_rows()
        size_before = st.db_bytes()
        counts = [{"sent": 0, "answered": 0, "reconnects": 0, "errors": 0, "statuses": {}} for _ in range(threads_n)]
        raw = request_bytes("POST", GENERATE, "gp-not-a-key-0123456789abcdefghij", close=False)
        end = time.monotonic() + duration

        def flood(i: int) -> None:
            c = counts[i]
            s, reader = None, None
            while time.monotonic() < end:
                try:
                    if s is None:
                        s = track_socket(socket.create_connection(st.addr, timeout=5))
                        reader = Reader(s)
                    s.settimeout(5)
                    s.sendall(raw)
                    c["sent"] += 1
                    status, headers, _ = reader.response(time.monotonic() + 10)
                    c["answered"] += 1
                    c["statuses"][status] = c["statuses"].get(status, 0) + 1
                    if headers.get("connection", "").lower() == "close":
                        close_quietly(s)
                        s = None
                        c["reconnects"] += 1
                except (OSError, ValueError):
                    c["errors"] += 1
                    if s is not None:
                        close_quietly(s)
                    s = None
                    c["reconnects"] += 1
            if s is not None:
                close_quietly(s)

        threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 20)
        sent = sum(c["sent"] for c in counts)
        statuses: dict[str, int] = {}
        for c in counts:
            for k, v in c["statuses"].items():
                statuses[str(k)] = statuses.get(str(k), 0) + v
        code, secs, killed = st.terminate_and_wait(timeout=40)  # flushes the log queue
        rows_after = st.log_rows()
        size_after = st.db_bytes()
        added = None if rows_after is None or rows_before is None else rows_after - rows_before
        growth = round((size_after - size_before) / (1 << 20), 2)
        figure = f"{sent} requests sent, {added} log rows added, SQLite +{growth} MiB"
        return {"figure": figure, "details": {
            "requests_sent": sent, "answered": sum(c["answered"] for c in counts), "statuses": statuses,
            "reconnects": sum(c["reconnects"] for c in counts), "errors": sum(c["errors"] for c in counts),
            "rows_before": rows_before, "rows_after": rows_after, "rows_added": added,
            "db_bytes_before": size_before, "db_bytes_after": size_after, "growth_mib": growth,
            "proxy_exit_code": code, "proxy_killed": killed,
            "rows": st.log_breakdown(),
        }}
    finally:
        close_all_sockets()
        st.stop()


# ---------------------------------------------------------------------------

def markdown_table(results: list[dict]) -> str:
    lines = ["| probe | what was measured | figure |", "|---|---|---|"]
    for r in results:
        cells = [r["name"], r["measured"], r["figure"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy-bin", required=True, help="gemini-proxy binary")
    parser.add_argument("--fake-bin", required=True, help="fake-gemini binary")
    parser.add_argument("--only", help="comma-separated probe names: " + ",".join(PROBES))
    parser.add_argument("--json", help="write the results as JSON to this file")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (databases, stderr logs)")
    args = parser.parse_args()

    names = list(PROBES)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in PROBES]
        if unknown:
            parser.error(f"unknown probe(s) {unknown}; known: {', '.join(PROBES)}")
    for path in (args.proxy_bin, args.fake_bin):
        if not Path(path).is_file():
            parser.error(f"no such binary: {path}")

    # SIGTERM to this script: unwind like Ctrl-C so every child is stopped.
    signal.signal(signal.SIGTERM, _interrupt)
    own_nofile = raise_own_nofile()
    tmp_root = Path(tempfile.mkdtemp(prefix="gp-hardening-"))
    ctx = Ctx(args, tmp_root)
    print(f"proxy {ctx.proxy_bin}\nfake  {ctx.fake_bin}\nthis process RLIMIT_NOFILE soft {own_nofile}; "
          f"children {CHILD_NOFILE}; serve defaults from --help: {ctx.defaults}; temp {tmp_root}", flush=True)
    results: list[dict] = []
    run_start = time.monotonic()
    interrupted = False
    try:
        for name in names:
            t0 = time.monotonic()
            entry = {"name": name, "measured": PROBES[name]["measured"]}
            try:
                out = PROBES[name]["fn"](ctx)
                entry.update(out)
            except KeyboardInterrupt:
                entry.update(figure="interrupted", details={}, seconds=round(time.monotonic() - t0, 1))
                results.append(entry)
                raise
            except Exception as e:  # report, never fake a figure
                entry.update(figure=f"could not run: {type(e).__name__}: {str(e).splitlines()[0][:200]}",
                             details={"error": str(e)[:4000]})
            entry["seconds"] = round(time.monotonic() - t0, 1)
            results.append(entry)
            print(f"[{name}] {entry['figure']}  ({entry['seconds']} s)", flush=True)
    except KeyboardInterrupt:
        interrupted = True
        print("interrupted; stopping children", file=sys.stderr)
    finally:
        close_all_sockets()
        stop_all_children()
        if not args.keep_temp:
            shutil.rmtree(tmp_root, ignore_errors=True)
    print()
    print(markdown_table(results))
    print(f"\ntotal {time.monotonic() - run_start:.0f} s", flush=True)
    if args.json:
        doc = {
            "proxy_bin": str(ctx.proxy_bin), "fake_bin": str(ctx.fake_bin),
            "started_unix": int(time.time() - (time.monotonic() - run_start)),
            "serve_defaults": ctx.defaults, "child_nofile_soft": CHILD_NOFILE, "interrupted": interrupted,
            "probes": results,
        }
        Path(args.json).write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return 130 if interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
