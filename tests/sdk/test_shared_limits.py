"""The issue's figure: two `serve` instances on one PostgreSQL database and one Redis,
a proxy key limited to 20 requests per minute, 60 requests sent alternately: at most
22 succeed in that minute (the limit plus one lease per instance, docs/governance.md).

Uses the PostgreSQL and Redis that run on these machines (PGHOST/PGPORT/PGUSER, and
REDIS_URL, default redis://127.0.0.1:6379)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest
import requests

from gp_harness import REPO_ROOT, Child, clean_env, realistic_key

PG = os.environ.get("GP_TEST_PG", "postgres://postgres@127.0.0.1:5432")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379")


def psql(database: str, *args: str) -> None:
    subprocess.run(
        ["psql", f"{PG}/{database}", "-v", "ON_ERROR_STOP=1", "-q", *args],
        check=True, capture_output=True, text=True, timeout=120,
    )


@pytest.fixture
def database():
    name = f"gp_shared_{uuid.uuid4().hex[:12]}"
    psql("postgres", "-c", f"create database {name}")
    try:
        files = [REPO_ROOT / "supabase/tests/bootstrap_roles.sql"]
        files += sorted((REPO_ROOT / "supabase/migrations").glob("*.sql"))
        psql(name, "--single-transaction", *[arg for f in files for arg in ("-f", str(f))])
        yield f"{PG}/{name}"
    finally:
        psql("postgres", "-c", f"drop database if exists {name} with (force)")


def test_two_instances_on_one_redis_admit_at_most_22_of_60_at_20_rpm(proxy_bin, fake_url, database, tmp_path):
    def cli(*args: str) -> str:
        done = subprocess.run(
            [str(proxy_bin), *args], env=clean_env(DATABASE_URL=database), capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    cli("keys", "add", realistic_key("AIzaSySHARED"), "--name", "shared")

    created = json.loads(cli("proxy-keys", "create", "--name", "twenty", "--rpm", "20", "--json"))
    secret = created.get("secret") or created["key"]
    prefix = f"gp-sdk-{uuid.uuid4().hex[:12]}"
    instances = []
    try:
        for i in range(2):
            env = clean_env(
                DATABASE_URL=database,
                GEMINI_BASE_URL=fake_url,
                REDIS_URL=REDIS,
                GEMINI_PROXY_REDIS_PREFIX=prefix,
                GEMINI_PROXY_KEY_CACHE=str(tmp_path / f"cache{i}.json"),
                GEMINI_PROXY_SHUTDOWN_GRACE_SECS="1",
            )
            child = Child(f"serve-{i}", [str(proxy_bin), "serve", "--listen", "127.0.0.1:0"], env, tmp_path)
            instances.append((child, child.wait_listening()))
        for _, url in instances:
            deadline = time.monotonic() + 30
            while requests.get(f"{url}/healthz", timeout=5).json().get("limits") != "shared":
                assert time.monotonic() < deadline, "an instance never shared its limits"
                time.sleep(0.05)

        def run() -> int:
            ok = 0
            for i in range(60):
                _, url = instances[i % 2]
                r = requests.post(
                    f"{url}/v1beta/models/gemini-2.5-flash:generateContent",
                    headers={"x-goog-api-key": secret},
                    json={"contents": [{"parts": [{"text": "hi"}]}]},
                    timeout=30,
                )
                assert r.status_code in (200, 429), r.text
                if r.status_code == 200:
                    ok += 1
                else:
                    assert "rpm limit" in r.json()["error"]["message"]
            return ok

        # All 60 in one minute window; if the minute turned meanwhile, a fresh key.
        for _ in range(3):
            minute = int(time.time() // 60)
            ok = run()
            if int(time.time() // 60) == minute:
                break
            created = json.loads(cli("proxy-keys", "create", "--name", "twenty-again", "--rpm", "20", "--json"))
            secret = created.get("secret") or created["key"]
            for _, url in instances:  # both instances' refresh (2 s) learns the new key
                deadline = time.monotonic() + 30
                while requests.get(f"{url}/v1beta/models", headers={"x-goog-api-key": secret}, timeout=5).status_code == 401:
                    assert time.monotonic() < deadline, "an instance never learned the new key"
                    time.sleep(0.05)
        print(f"{ok} of 60 succeeded at 20 rpm across two instances")
        assert 20 <= ok <= 22, f"{ok} of 60 succeeded"
    finally:
        for child, _ in instances:
            child.stop()
