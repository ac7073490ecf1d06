"""Runs the shared admission table (tests/admission/cases.json) against a running
target: the gemini-proxy binary (tests/sdk/test_admission.py) or the Worker under
wrangler dev (tests/worker/test_admission.py). The same table runs against
proxy-core's pipeline in Rust (crates/proxy-core/src/request/admission_table_tests.rs),
so a rule of admission written once in the core is seen to hold on every platform.

The table says what each case sends and what must come back; see its "about" lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable, Iterator

import requests

from gp_harness import REPO_ROOT, leaked_secrets, realistic_key

TABLE_PATH = REPO_ROOT / "tests" / "admission" / "cases.json"
TABLE: dict = json.loads(TABLE_PATH.read_text())
CASES: dict[str, dict] = {case["name"]: case for case in TABLE["cases"]}
# The body limit every target of the table is started with, as GEMINI_PROXY_MAX_BODY_MB.
MAX_BODY_MB: str = str(TABLE["max_body_mb"])
# Well-formed but issued by no one.
UNKNOWN_KEY = "gp-" + "0" * 48
# The one upstream key of a target under test: no other proxy of the session holds
# it, so fake-gemini's records made with it are this target's alone.
UPSTREAM_KEY = realistic_key("AIzaSyADMISSION")

# Chunk size of a body sent without content-length.
CHUNK = 64 * 1024


@dataclass
class Target:
    """A running proxy and how to read what its upstream received."""

    url: str
    valid_key: str
    fake_requests: Callable[[], list[dict]]


def fill(text: str, target: Target) -> str:
    return text.replace("$VALID_KEY", target.valid_key).replace("$UNKNOWN_KEY", UNKNOWN_KEY)


def generated_body(size: int) -> bytes:
    """A generateContent request of exactly ``size`` bytes."""
    head, tail = b'{"contents":[{"parts":[{"text":"', b'"}]}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def case_body(case: dict) -> bytes | None:
    if "body" in case:
        return json.dumps(case["body"], separators=(",", ":")).encode()
    if "raw_body" in case:
        return case["raw_body"].encode()
    if "body_bytes" in case:
        return generated_body(case["body_bytes"])
    return None


def chunks(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), CHUNK):
        yield body[start : start + CHUNK]


def send(target: Target, case: dict) -> requests.Response:
    body = case_body(case)
    # A generator makes requests send transfer-encoding: chunked, no content-length.
    data = chunks(body) if body is not None and case.get("chunked") else body
    headers = {name: fill(value, target) for name, value in case["headers"].items()}
    return requests.request(
        case["method"], target.url + fill(case["path"], target), headers=headers, data=data, timeout=60
    )


def upstream_calls(target: Target) -> list[dict]:
    return [r for r in target.fake_requests() if r.get("api_key") == UPSTREAM_KEY]


def run_case(target: Target, name: str) -> None:
    """Sends the case and checks the answer and what reached upstream."""
    case = CASES[name]
    expect = case["expect"]
    before = len(upstream_calls(target))
    response = send(target, case)
    text = response.text  # the whole body, so a stream has ended before upstream is read
    where = f"{name}: {response.status_code} {response.headers.get('content-type')} {text[:500]!r}"
    assert response.status_code == expect["status"], where
    assert response.headers.get("x-request-id"), f"{where}: no x-request-id"
    assert not leaked_secrets(text, [UPSTREAM_KEY]), f"{where}: the upstream key is in the answer"
    if "error" in expect:
        check_error(expect["error"], expect["status"], response, where)
    if "content_type" in expect:
        content_type = response.headers.get("content-type", "")
        assert content_type.startswith(expect["content_type"]), where
    if "json_keys" in expect:
        body = response.json()
        missing = [key for key in expect["json_keys"] if key not in body]
        assert not missing, f"{where}: no {missing} in the answer"
    check_upstream(expect["upstream"], upstream_calls(target)[before:], where)


def check_error(error: dict, status: int, response: requests.Response, where: str) -> None:
    body = response.json()
    assert set(body) == {"error"}, where
    fields = body["error"]
    assert isinstance(fields.get("message"), str) and fields["message"], where
    if error["shape"] == "gemini":
        assert set(fields) == {"code", "message", "status"}, where
        assert fields["code"] == status, where
        assert fields["status"] == error["status"], where
    else:
        assert set(fields) == {"message", "type", "code", "param"}, where
        assert (fields["type"], fields["code"]) == (error["type"], error["code"]), where


def check_upstream(expected: dict | None, calls: list[dict], where: str) -> None:
    if expected is None:
        assert calls == [], f"{where}: upstream was called: {calls}"
        return
    assert len(calls) == 1, f"{where}: upstream got {calls}"
    call = calls[0]
    assert (call["method"], call["path"], call["query"]) == (
        expected["method"],
        expected["path"],
        expected["query"],
    ), f"{where}: upstream got {call}"
    if "body_len" in expected:
        assert call["body_len"] == expected["body_len"], f"{where}: upstream got {call}"
