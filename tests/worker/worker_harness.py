"""Harness for the Worker tests: run the built Worker under `wrangler dev` in front
of fake-gemini, and read what it printed.

Nothing is built here: scripts/test-worker.sh builds the Worker
(crates/cloudflare/build/) and the fake before running pytest. Each Worker gets its
own folder with a wrangler.toml derived from the repository's (same compatibility
date and vars, `main` pointing at the build, no build command) and a `.dev.vars`
holding its secrets, so wrangler shows them as hidden and several Workers with
different keys can run side by side.

Every process started here is stopped in a ``finally`` (fixture teardown) by its
process id; workerd, which wrangler starts, is stopped by its id too if wrangler
left it behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sdk"))

from gp_harness import (  # noqa: E402  (the shared SDK harness, tests/sdk)
    KNOWN_SECRETS,
    REPO_ROOT,
    UPSTREAM_KEYS,
    Child,
    _die_with_parent,
    clean_env,
    find_binary,
    leaked_secrets,
    realistic_key,
)

__all__ = [
    "HASHED_PROXY_KEY",
    "KNOWN_SECRETS",
    "PROXY_KEYS",
    "UPSTREAM_KEYS",
    "Child",
    "WorkerStack",
    "clean_env",
    "find_binary",
    "leaked_secrets",
    "realistic_key",
    "start_worker",
]

# Client keys of the test Workers: the first given in plain text, the second as its
# SHA-256 (both forms PROXY_KEYS accepts).
PROXY_KEY = "gp-worker-tests-" + "7" * 32
HASHED_PROXY_KEY = "gp-worker-hashed-" + "5" * 32
PROXY_KEYS = [PROXY_KEY, "sha256:" + hashlib.sha256(HASHED_PROXY_KEY.encode()).hexdigest()]

WRANGLER = REPO_ROOT / "node_modules" / ".bin" / "wrangler"
WORKER_MAIN = REPO_ROOT / "crates" / "cloudflare" / "build" / "index.js"
# wrangler dev bundles and starts workerd; on a busy 2-core machine that takes a while.
START_TIMEOUT = 120.0
LOG_TIMEOUT = 15.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Process ids below ``pid`` (children first), read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class Wrangler:
    """`wrangler dev` as a child: stdout and stderr kept whole (the Worker's
    console output is what the log tests read), read by threads so no pipe fills."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path):
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._readers = [
            threading.Thread(target=self._read, args=(stream,), daemon=True)
            for stream in (self.proc.stdout, self.proc.stderr)
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream) -> None:
        for raw in stream:
            with self._lock:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\r\n"))

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def stop(self) -> None:
        below = descendants(self.proc.pid) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        for pid in below:  # workerd, if wrangler did not take it down
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for reader in self._readers:
            reader.join(timeout=5)


@dataclass
class WorkerStack:
    """A running Worker (wrangler dev) in front of the fake."""

    url: str
    fake_url: str
    proxy_key: str
    secrets: dict[str, str]
    key_ids: dict[str, int]
    wrangler: Wrangler | None = field(default=None, repr=False)

    def output(self) -> str:
        """Everything wrangler and the Worker printed so far."""
        return self.wrangler.output() if self.wrangler else ""

    def log_records(self) -> list[dict]:
        """The Worker's request log: its JSON lines (one per request)."""
        records = []
        for line in self.output().splitlines():
            start = line.find('{"id":')
            if start < 0:
                continue
            try:
                record = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(record, dict) and "route" in record and "upstream_key_ids" in record:
                records.append(record)
        return records

    def wait_log(self, request_id: str, timeout: float = LOG_TIMEOUT) -> dict:
        return self.wait_logs(
            lambda rs: any(r["id"] == request_id for r in rs), f"a record for {request_id}", timeout
        )[request_id]

    def wait_logs(self, predicate: Callable[[list[dict]], bool], what: str, timeout: float = LOG_TIMEOUT) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            records = self.log_records()
            if predicate(records):
                return {r["id"]: r for r in records}
            if time.monotonic() > deadline:
                raise AssertionError(f"the Worker never logged {what} within {timeout:.0f} s:\n{self.output()[-3000:]}")
            time.sleep(0.1)

    def fake_requests(self) -> list[dict]:
        r = requests.get(f"{self.fake_url}/__fake/requests", timeout=10)
        r.raise_for_status()
        return r.json()


def worker_config(workdir: Path, name: str, main: Path) -> Path:
    """A wrangler.toml for this Worker: the repository's settings, the built entry
    point, no build step (the test script built it already)."""
    repo = tomllib.loads((REPO_ROOT / "wrangler.toml").read_text())
    lines = [
        f"name = {json.dumps(name)}",
        f"main = {json.dumps(str(main))}",
        f"compatibility_date = {json.dumps(repo['compatibility_date'])}",
    ]
    if repo.get("compatibility_flags"):
        lines.append(f"compatibility_flags = {json.dumps(repo['compatibility_flags'])}")
    lines.append("[vars]")
    for key, value in repo.get("vars", {}).items():
        lines.append(f"{key} = {json.dumps(value)}")
    path = workdir / "wrangler.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def start_worker(
    fake_url: str,
    workdir: Path,
    secrets: dict[str, str] | None = None,
    proxy_keys: list[str] | None = None,
    extra_vars: dict[str, str] | None = None,
    name: str = "gemini-proxy-test",
    main: Path = WORKER_MAIN,
) -> WorkerStack:
    """Starts the built Worker under `wrangler dev` with ``secrets`` (name -> key,
    ids by position) as GEMINI_API_KEYS and ``proxy_keys`` as PROXY_KEYS (the first
    is the stack's client key). With ``extra_vars`` containing SUPABASE_URL the keys
    come from there instead. ``main`` is the entry point (the built Worker by default).
    The caller must call ``stack.wrangler.stop()``."""
    if not main.is_file():
        raise RuntimeError(f"{main} is missing: run scripts/build-worker.sh first")
    if not WRANGLER.exists():
        raise RuntimeError(f"{WRANGLER} is missing: run `npm ci` in {REPO_ROOT}")
    workdir.mkdir(parents=True, exist_ok=True)
    secrets = dict(secrets or {})
    KNOWN_SECRETS.update(secrets.values())
    proxy_keys = list(proxy_keys or [])
    dev_vars = {"GEMINI_BASE_URL": fake_url}
    if secrets:
        dev_vars["GEMINI_API_KEYS"] = ",".join(secrets.values())
    if proxy_keys:
        dev_vars["PROXY_KEYS"] = ",".join(proxy_keys)
    dev_vars.update(extra_vars or {})
    (workdir / ".dev.vars").write_text("".join(f"{k}={json.dumps(v)}\n" for k, v in dev_vars.items()))
    config = worker_config(workdir, name, main)
    port = free_port()
    argv = [
        str(WRANGLER), "dev",
        "--config", str(config),
        "--ip", "127.0.0.1", "--port", str(port),
        "--inspector-port", str(free_port()),
        "--persist-to", str(workdir / "state"),
        "--show-interactive-dev-session=false",
        "--log-level", "log",
    ]
    env = clean_env(
        WRANGLER_SEND_METRICS="false",
        WRANGLER_SEND_ERROR_REPORTS="false",
        # No lookup of Cloudflare's `Request.cf` sample: this machine reaches no such host.
        CLOUDFLARE_CF_FETCH_ENABLED="false",
        CI="true",
        NO_COLOR="1",
        FORCE_COLOR="0",
        XDG_CONFIG_HOME=str(workdir / "config"),
    )
    wrangler = Wrangler(argv, env, workdir)
    url = f"http://127.0.0.1:{port}"
    stack = WorkerStack(
        url=url, fake_url=fake_url, proxy_key=proxy_keys[0] if proxy_keys else "",
        secrets=secrets, key_ids={name: i + 1 for i, name in enumerate(secrets)}, wrangler=wrangler,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if wrangler.proc.poll() is not None:
            wrangler.stop()
            raise RuntimeError(f"wrangler dev exited ({wrangler.proc.returncode}):\n{wrangler.output()[-4000:]}")
        try:
            if requests.get(f"{url}/healthz", timeout=5).status_code == 200:
                return stack
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            wrangler.stop()
            raise RuntimeError(f"the Worker did not answer within {START_TIMEOUT:.0f} s:\n{wrangler.output()[-4000:]}")
        time.sleep(0.25)
