"""Proxy-key limits as the official SDKs meet them: each limit refused at its number,
in the error type each SDK raises for that status, with the limit named, Retry-After
on rate limits, nothing sent upstream, and the refusal logged with its reason."""

from __future__ import annotations

import time

import openai
import pytest
import requests
from google.genai import errors

from gp_harness import FULL_TEXT
from sdk_clients import error_text, genai_client, openai_client

FLASH = "gemini-2.5-flash"


def governed_key(stack, name: str, *flags: str) -> tuple[str, int]:
    """A proxy key with ``flags``, once the running proxy knows it: after exactly one
    request of it was admitted (a model list, which counts toward its rpm)."""
    created = stack.cli_json("proxy-keys", "create", "--name", name, *flags, "--json")
    secret = created.get("secret") or created["key"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        # A request the policy never refuses: the model list.
        r = requests.get(f"{stack.url}/v1beta/models", headers={"x-goog-api-key": secret}, timeout=10)
        if r.status_code != 401:
            return secret, created["id"]
        time.sleep(0.05)
    raise AssertionError(f"the proxy never learned proxy key {name}")


def upstream_answers(stack, model: str) -> int:
    """Calls of ``model`` that reached the healthy key (the shared stack's other keys
    fail over, each adding a call that was not an answer)."""
    healthy = stack.secrets["healthy"]
    return sum(1 for r in stack.fake_requests() if model in r["path"] and r.get("api_key") == healthy)


def in_one_minute(body):
    """Runs ``body`` again if the clock's minute changed meanwhile: per-minute counts
    live in fixed windows, and the rule under test is the count, not the clock."""
    for _ in range(3):
        minute = int(time.time() // 60)
        result = body()
        if int(time.time() // 60) == minute:
            return result
    raise AssertionError("three minutes changed under the test")


def test_rpm_is_refused_at_its_number_in_each_sdks_shape(stack):
    def run():
        # Four per minute: the probe that saw the key live, and three generations.
        secret, key_id = governed_key(stack, f"rpm-{time.time_ns()}", "--rpm", "4")
        g = genai_client(stack.url, secret)
        model = f"{FLASH}-gov-rpm-{key_id}"
        for _ in range(3):
            assert g.models.generate_content(model=model, contents="hi").text == FULL_TEXT
        with pytest.raises(errors.ClientError) as refused:
            g.models.generate_content(model=model, contents="hi")
        assert refused.value.code == 429
        assert "rpm limit" in error_text(refused.value)
        assert upstream_answers(stack, model) == 3, "the refused request never went upstream"
        o = openai_client(stack.url, secret)
        with pytest.raises(openai.RateLimitError) as limited:
            o.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert limited.value.code == "limit_rpm"
        retry_after = int(limited.value.response.headers["retry-after"])
        assert 1 <= retry_after <= 60
        return key_id

    key_id = in_one_minute(run)
    records = stack.wait_logs(
        lambda rs: sum(1 for r in rs if r.get("proxy_key_id") == key_id and r.get("error_kind") == "limit_rpm") == 2,
        "both rpm refusals",
    )
    assert all(r["status"] == 429 for r in records if r.get("error_kind") == "limit_rpm")


def test_a_model_outside_the_keys_list_is_403_naming_the_model(stack):
    secret, _ = governed_key(stack, "models-only", "--models", "gemini-2.5-flash*")
    g = genai_client(stack.url, secret)
    assert g.models.generate_content(model=f"{FLASH}-gov-allowed", contents="hi").text == FULL_TEXT
    with pytest.raises(errors.ClientError) as refused:
        g.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert refused.value.code == 403
    assert "(model" in error_text(refused.value)
    o = openai_client(stack.url, secret)
    with pytest.raises(openai.PermissionDeniedError) as denied:
        o.chat.completions.create(model="gemini-2.5-pro", messages=[{"role": "user", "content": "hi"}])
    assert denied.value.code == "limit_model"


def test_a_spent_budget_refuses_the_next_request_and_records_carry_their_cost(stack):
    # One fake answer costs more than a millionth of a dollar: the first request
    # starts under the budget and ends over it.
    secret, key_id = governed_key(stack, "budget", "--budget-usd", "0.000001", "--budget-period", "day")
    g = genai_client(stack.url, secret)
    model = f"{FLASH}-gov-budget"
    assert g.models.generate_content(model=model, contents="hi").text == FULL_TEXT
    with pytest.raises(errors.ClientError) as refused:
        g.models.generate_content(model=model, contents="hi")
    assert refused.value.code == 403
    assert "budget" in error_text(refused.value)
    # The generate call's record, not the key check's models.list (also a 200 for this
    # key): records reach the log in batches, so one may be there before the other.
    def priced(r: dict) -> bool:
        return r.get("proxy_key_id") == key_id and r.get("status") == 200 and r.get("model") == model

    records = stack.wait_logs(lambda rs: any(priced(r) for r in rs), "the priced request")
    answered = next(r for r in records if priced(r))
    assert answered["cost_usd"] > 0.000001


def test_an_expired_key_is_403(stack):
    secret, _ = governed_key(stack, "expired", "--expires", "2020-01-01")
    g = genai_client(stack.url, secret)
    with pytest.raises(errors.ClientError) as refused:
        g.models.generate_content(model=FLASH, contents="hi")
    assert refused.value.code == 403
    assert "expired" in error_text(refused.value)
