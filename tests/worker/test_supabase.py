"""The Worker with Supabase: keys read from the database through PostgREST, request
logs and learned key state written back in batches from `ctx.wait_until`.

Supabase's REST API is played by crates/postgrest-test-server in front of the local
PostgreSQL, on a fresh database with supabase/migrations applied. Skipped (with the
reason) when no PostgreSQL answers or the binaries are missing; scripts/test-worker.sh
sets GP_WORKER_REQUIRE_SUPABASE=1 so CI fails instead of skipping."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest
import requests

from gp_harness import FULL_TEXT, REPO_ROOT
from worker_harness import Child, clean_env, leaked_secrets, realistic_key, start_worker

PG_URL = os.environ.get("GP_WORKER_PG_URL", "postgresql://postgres@127.0.0.1:5432")
PROXY_KEY = "gp-worker-supabase-" + "3" * 32
KEYS = {"invalid": realistic_key("AIzaSy-invalid-sb-"), "healthy": realistic_key("AIzaSyHEALTHYsb")}


def unavailable(reason: str) -> None:
    if os.environ.get("GP_WORKER_REQUIRE_SUPABASE") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def psql(url: str, *args: str, sql: str | None = None) -> str:
    done = subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", url, *args],
        input=sql, capture_output=True, text=True, timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"psql {args} failed: {done.stderr}")
    return done.stdout.strip()


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    """A fresh database with the Supabase schema, removed afterwards."""
    if shutil.which("psql") is None:
        unavailable("psql is not installed")
    admin = f"{PG_URL}/postgres"
    # The machine's PostgreSQL is shared; give a restart in progress time to finish.
    deadline = time.monotonic() + 60
    while True:
        try:
            psql(admin, "-c", "select 1")
            break
        except AssertionError as e:
            if time.monotonic() > deadline:
                unavailable(f"no PostgreSQL at {PG_URL}: {e}")
            time.sleep(1)
    name = f"gp_worker_{uuid.uuid4().hex[:12]}"
    psql(admin, "-c", f"create database {name}")
    url = f"{PG_URL}/{name}"
    try:
        psql(url, "-f", str(REPO_ROOT / "supabase/tests/bootstrap_roles.sql"))
        for migration in sorted((REPO_ROOT / "supabase/migrations").glob("*.sql")):
            psql(url, "--single-transaction", "-f", str(migration))
        rows = ",".join(f"('{name}', '{secret}')" for name, secret in KEYS.items())
        psql(url, sql=f"insert into upstream_keys (name, secret) values {rows};")
        digest = hashlib.sha256(PROXY_KEY.encode()).hexdigest()
        psql(url, sql=f"insert into proxy_keys (name, secret_hash) values ('worker-tests', '{digest}');")
        yield url
    finally:
        psql(admin, "-c", f"drop database if exists {name} with (force)")


@pytest.fixture(scope="module")
def rest_url(database, tmp_path_factory) -> Iterator[str]:
    binary = Path(os.environ.get("POSTGREST_TEST_SERVER_BIN") or REPO_ROOT / "target/debug/postgrest-test-server")
    if not binary.is_file():
        unavailable(f"{binary} is missing (cargo build -p postgrest-test-server)")
    child = Child("postgrest-test-server", [str(binary), database], clean_env(), tmp_path_factory.mktemp("rest"))
    try:
        line = child.lines.get(timeout=60)
        assert line and line.startswith("http://"), f"postgrest-test-server said {line!r}: {child.stderr_text()}"
        yield line.strip()
    finally:
        child.stop()


@pytest.fixture(scope="module")
def supabase_worker(fake_url, rest_url, tmp_path_factory):
    project_url = rest_url.removesuffix("/rest/v1")
    stack = start_worker(
        fake_url,
        tmp_path_factory.mktemp("supabase-worker"),
        extra_vars={
            "SUPABASE_URL": project_url,
            # postgrest-test-server takes the role name as the bearer token.
            "SUPABASE_SERVICE_ROLE_KEY": "service_role",
            "GEMINI_PROXY_REFRESH_MS": "500",
        },
        name="gemini-proxy-supabase",
    )
    stack.proxy_key = PROXY_KEY
    stack.secrets = dict(KEYS)
    try:
        yield stack
    finally:
        if stack.wrangler is not None:
            stack.wrangler.stop()


def wait_for(query: str, url: str, predicate, what: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = psql(url, "-c", query)
        if predicate(out):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} never showed up; last: {out!r}")
        time.sleep(0.2)


def test_logs_and_key_state_reach_the_database(supabase_worker, database):
    ids = {}
    for model in ["gemini-2.5-flash-sb-one", "gemini-2.5-flash-sb-two"]:
        r = requests.post(
            f"{supabase_worker.url}/v1beta/models/{model}:generateContent",
            headers={"x-goog-api-key": PROXY_KEY},
            json={"contents": []},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert FULL_TEXT in r.text
        ids[model] = r.headers["x-request-id"]
    r = requests.post(
        f"{supabase_worker.url}/v1beta/models/gemini-2.5-flash-sb-sse:streamGenerateContent?alt=sse",
        headers={"x-goog-api-key": PROXY_KEY},
        json={"contents": []},
        timeout=60,
    )
    assert r.status_code == 200
    ids["stream"] = r.headers["x-request-id"]
    in_list = ",".join(f"'{i}'" for i in ids.values())
    rows = wait_for(
        f"select id, status, model, answered_key_id, total_tokens, stream from request_logs where id in ({in_list})"
        " order by id",
        database,
        lambda out: len(out.splitlines()) == len(ids),
        "the three request_logs rows",
    )
    healthy_id = psql(database, "-c", "select id from upstream_keys where name = 'healthy'")
    for line in rows.splitlines():
        _, status, model, answered, total, stream = line.split("|")
        assert (status, answered) == ("200", healthy_id), line
        assert total in ("19", "21"), line
        assert (stream == "t") == (model == "gemini-2.5-flash-sb-sse"), line
    # The invalid key was tried by the first request and marked; the mark went to
    # key_state through save_state in wait_until.
    wait_for(
        "select invalid_reason from key_state s join upstream_keys k on k.id = s.key_id where k.name = 'invalid'",
        database,
        lambda out: out == "API_KEY_INVALID",
        "the invalid mark in key_state",
    )
    assert not leaked_secrets(supabase_worker.output(), list(KEYS.values()))


def test_new_keys_are_picked_up_by_the_refresh(supabase_worker, database):
    """A proxy key added to the database works after the isolate's next refresh."""
    added = "gp-worker-supabase-added-" + "9" * 24
    digest = hashlib.sha256(added.encode()).hexdigest()
    psql(database, sql=f"insert into proxy_keys (name, secret_hash) values ('added', '{digest}');")
    url = f"{supabase_worker.url}/v1beta/models"
    deadline = time.monotonic() + 20
    while True:
        status = requests.get(url, headers={"x-goog-api-key": added}, timeout=30).status_code
        if status == 200:
            break
        assert status == 401, status
        assert time.monotonic() < deadline, "the new proxy key was never accepted"
        time.sleep(0.3)
