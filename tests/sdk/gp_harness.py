"""Harness for the SDK tests: start fake-gemini and gemini-proxy, talk to them.

Nothing is built here. The binaries come from ``$GEMINI_PROXY_BIN`` and
``$FAKE_GEMINI_BIN``, defaulting to ``target/debug/{gemini-proxy,fake-gemini}``
under the repository root (build them with
``cargo build -p gemini-proxy -p fake-gemini``).

Every child process is started by :class:`Child` and stopped in a ``finally``
(fixture teardown), also when a test or the fixture itself fails.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]

# Seconds to wait for a child's `listening on` line.
START_TIMEOUT = 30.0
# Logs are written in batches shortly after each request: poll up to this long.
LOG_TIMEOUT = 10.0

# What fake-gemini answers (crates/fake-gemini/src/scenario.rs).
FULL_TEXT = "Hello from fake Gemini"
EMBEDDING = [0.1, 0.2, 0.3, 0.4]
FAKE_MODELS = ["models/gemini-2.5-flash", "models/gemini-2.5-pro", "models/text-embedding-004"]


def realistic_key(prefix: str) -> str:
    """A 39-character key shaped like a real Gemini key (`AIzaSy` + 33)."""
    filler = "Qx7Lm2Np9Rt4Vw8Yz3Bc6Df1Gh5Jk0Ls"
    key = (prefix + filler)[:39]
    assert len(key) == 39, key
    return key


# Upstream keys by role. The failing ones are added first: the pool starts with
# the least recently used key, in id order, so the first request of the session
# fails over through every one of them before the healthy key answers.
UPSTREAM_KEYS: dict[str, str] = {
    "r429m": realistic_key("AIzaSy-r429m-"),
    "invalid": realistic_key("AIzaSy-invalid-"),
    "suspended": realistic_key("AIzaSy-suspended-"),
    "r503": realistic_key("AIzaSy-r503-"),
    "healthy": realistic_key("AIzaSyHEALTHY"),
}


# Every upstream secret any proxy started by these tests holds.
KNOWN_SECRETS: set[str] = set(UPSTREAM_KEYS.values())


def leaked_secrets(text: str, secrets: list[str] | None = None) -> list[str]:
    """Upstream secrets (whole, or their unmasked middle) found in ``text``;
    by default all of :data:`KNOWN_SECRETS`.

    The proxy masks keys as first four + last four characters, so a masked key
    never contains the middle; any middle found is a leak.
    """
    found = []
    for secret in secrets if secrets is not None else sorted(KNOWN_SECRETS):
        if secret in text or secret[6:-6] in text:
            found.append(secret)
    return found


def find_binary(env: str, name: str) -> Path:
    path = Path(os.environ.get(env) or REPO_ROOT / "target" / "debug" / name)
    if not path.is_absolute():
        path = REPO_ROOT / path
    if not path.is_file():
        pytest.fail(
            f"{name} binary not found at {path}. Build it first with "
            f"`cargo build -p gemini-proxy -p fake-gemini`, or point ${env} at it.",
            pytrace=False,
        )
    return path


def _die_with_parent() -> None:
    """Linux: the child gets SIGTERM if pytest itself is killed (no orphans)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class Child:
    """A child process whose stdout lines are read by a thread and whose stderr
    goes to a file, so neither pipe can fill up and block it."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        self.stderr_path = log_dir / f"{name}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8", "replace").rstrip("\r\n"))
        self.lines.put(None)

    def stderr_text(self) -> str:
        try:
            self._stderr.flush()
            return self.stderr_path.read_text("utf-8", "replace")[-4000:]
        except OSError as e:
            return f"<cannot read stderr: {e}>"

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        """Returns the base URL from the `listening on http://ADDR` line."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                problem = f"no `listening on` line within {timeout:.0f} s"
                break
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    problem = f"exited with status {self.proc.returncode}"
                    break
                continue
            if line is None:
                self.proc.wait(timeout=5)
                problem = f"closed stdout and exited with status {self.proc.returncode}"
                break
            seen.append(line)
            if line.startswith("listening on "):
                return line.removeprefix("listening on ").strip().rstrip("/")
        self.stop()
        raise RuntimeError(
            f"{self.name} did not start: {problem}.\n"
            f"stdout: {seen!r}\nstderr:\n{self.stderr_text()}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._stderr.close()


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment minus the proxy's own settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GEMINI_PROXY_", "GEMINI_BASE_URL"))}
    env.update(extra)
    return env


@dataclass
class ProxyStack:
    """A running gemini-proxy with its own database, in front of the fake."""

    url: str
    fake_url: str
    db: Path
    proxy_bin: Path
    proxy_key: str
    proxy_key_id: int
    secrets: dict[str, str]
    key_ids: dict[str, int]
    child: Child | None = field(default=None, repr=False)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [str(self.proxy_bin), "--db", str(self.db), *args],
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"gemini-proxy {' '.join(args)} failed ({done.returncode}):\n"
                f"stdout: {done.stdout}\nstderr: {done.stderr}"
            )
        return done

    def cli_json(self, *args: str):
        return json.loads(self.cli(*args).stdout)

    def logs(self, limit: int = 10_000) -> list[dict]:
        return self.cli_json("logs", "list", "--json", "--limit", str(limit))

    def wait_logs(self, predicate: Callable[[list[dict]], bool], what: str, timeout: float = LOG_TIMEOUT) -> list[dict]:
        """Polls `logs list --json` until ``predicate(records)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.logs()
            if predicate(records):
                return records
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"logs never showed {what} within {timeout:.0f} s; last records: "
                    f"{json.dumps(records[:10], indent=1)}"
                )
            time.sleep(0.1)

    def fake_requests(self) -> list[dict]:
        r = requests.get(f"{self.fake_url}/__fake/requests", timeout=10)
        r.raise_for_status()
        return r.json()


def start_proxy(
    proxy_bin: Path,
    fake_url: str,
    workdir: Path,
    secrets: dict[str, str],
    name: str = "gemini-proxy",
    refresh_ms: int = 200,
    extra_env: dict[str, str] | None = None,
) -> ProxyStack:
    """Creates a database with ``secrets`` (name -> key) and a proxy key, then
    starts `serve` on port 0. The caller must call ``stack.child.stop()``."""
    workdir.mkdir(parents=True, exist_ok=True)
    KNOWN_SECRETS.update(secrets.values())
    db = workdir / "proxy.db"
    stack = ProxyStack(
        url="", fake_url=fake_url, db=db, proxy_bin=proxy_bin, proxy_key="", proxy_key_id=0,
        secrets=dict(secrets), key_ids={},
    )
    for key_name, secret in secrets.items():
        stack.cli("keys", "add", secret, "--name", key_name)
    by_name = {row["name"]: row["id"] for row in stack.cli_json("keys", "list", "--json")}
    stack.key_ids = {key_name: by_name[key_name] for key_name in secrets}
    created = stack.cli_json("proxy-keys", "create", "--name", "sdk-tests", "--json")
    stack.proxy_key, stack.proxy_key_id = created["key"], created["id"]
    settings = {
        "GEMINI_BASE_URL": fake_url,
        "GEMINI_PROXY_DB": str(db),
        "GEMINI_PROXY_REFRESH_MS": str(refresh_ms),
        "GEMINI_PROXY_SHUTDOWN_GRACE_SECS": "1",
    }
    settings.update(extra_env or {})
    env = clean_env(**settings)
    stack.child = Child(name, [str(proxy_bin), "serve", "--listen", "127.0.0.1:0"], env, workdir)
    stack.url = stack.child.wait_listening()
    return stack


@pytest.fixture(scope="session")
def fake_url(tmp_path_factory) -> Iterator[str]:
    """fake-gemini on a free port for the whole session; both suites' conftest import it."""
    fake_bin = find_binary("FAKE_GEMINI_BIN", "fake-gemini")
    workdir = tmp_path_factory.mktemp("fake")
    child = Child("fake-gemini", [str(fake_bin), "--listen", "127.0.0.1:0"], clean_env(), workdir)
    try:
        yield child.wait_listening()
    finally:
        child.stop()
