"""`GET /metrics` on the real `serve` binary, configured by environment variables as
an operator would (`GEMINI_PROXY_METRICS_TOKEN`), after google-genai and openai
traffic: the token is asked for, the series count what the SDKs sent, and no key
appears in them."""

from __future__ import annotations

from typing import Iterator

import pytest
import requests

from gp_harness import FULL_TEXT, UPSTREAM_KEYS, ProxyStack, start_proxy
from sdk_clients import genai_client, openai_client

TOKEN = "scrape-" + "9" * 24


@pytest.fixture(scope="module")
def metrics_stack(proxy_bin, fake_url, tmp_path_factory) -> Iterator[ProxyStack]:
    stack = None
    try:
        stack = start_proxy(
            proxy_bin,
            fake_url,
            tmp_path_factory.mktemp("metrics"),
            {"healthy": UPSTREAM_KEYS["healthy"]},
            name="gemini-proxy-metrics",
            extra_env={"GEMINI_PROXY_METRICS_TOKEN": TOKEN},
        )
        yield stack
    finally:
        if stack is not None and stack.child is not None:
            stack.child.stop()


def sample(text: str, name: str, **labels: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, _, value = line.rpartition(" ")
        metric = series.split("{", 1)[0]
        if metric == name and all(f'{k}="{v}"' in series for k, v in labels.items()):
            return float(value)
    return None


def test_the_sdks_traffic_shows_in_the_metrics(metrics_stack):
    genai = genai_client(metrics_stack.url, metrics_stack.proxy_key)
    assert genai.models.generate_content(model="gemini-2.5-flash", contents="hi").text == FULL_TEXT
    chat = openai_client(metrics_stack.url, metrics_stack.proxy_key).chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
    )
    assert chat.choices[0].message.content
    metrics_stack.wait_logs(lambda rs: len(rs) >= 2, "two records")

    url = f"{metrics_stack.url}/metrics"
    assert requests.get(url, timeout=10).status_code == 401
    response = requests.get(url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200
    text = response.text
    key = str(metrics_stack.proxy_key_id)
    assert sample(text, "gemini_proxy_requests_total", route="generateContent", status="200", proxy_key=key) == 1
    assert sample(text, "gemini_proxy_requests_total", route="chat.completions", status="200", proxy_key=key) == 1
    assert sample(text, "gemini_proxy_upstream_attempts_total", model="gemini-2.5-flash", outcome="ok") == 2
    assert sample(text, "gemini_proxy_keys", state="healthy") == 1
    for secret in [metrics_stack.proxy_key, *metrics_stack.secrets.values(), TOKEN]:
        assert secret not in text
