"""The official google-genai and openai SDKs against the Worker: the same routes and
answers as the native binary (tests/sdk), served by the Worker's glue around the
same proxy-core."""

from __future__ import annotations

import time

import openai
import pytest
import requests
from google import genai
from google.genai import errors, types

from gp_harness import EMBEDDING, FAKE_MODELS, FULL_TEXT
from sdk_clients import error_text, genai_client, openai_client
from worker_harness import HASHED_PROXY_KEY, leaked_secrets

BAD_KEY = "gp-" + "0" * 48


@pytest.fixture(scope="module")
def client(worker) -> genai.Client:
    return genai_client(worker.url, worker.proxy_key)


def test_generate_content(client):
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert response.text == FULL_TEXT
    usage = response.usage_metadata
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (12, 7, 19)
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_generate_content_stream(client):
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello"))
    assert len(chunks) == 3
    assert "".join(c.text or "" for c in chunks) == FULL_TEXT
    final = chunks[-1].usage_metadata
    assert (final.prompt_token_count, final.candidates_token_count, final.total_token_count) == (12, 9, 21)


def test_stream_chunks_arrive_as_produced(client):
    """fake-gemini waits 300 ms before each chunk of a `slowstream` model: if the
    Worker passes chunks on as they come, the first reaches the SDK ~600 ms before
    the last; had it buffered the answer, all three would arrive together."""
    arrivals: list[float] = []
    texts: list[str] = []
    for chunk in client.models.generate_content_stream(model="gemini-2.5-flash-slowstream", contents="Say hello"):
        arrivals.append(time.monotonic())
        texts.append(chunk.text or "")
    assert "".join(texts) == FULL_TEXT
    assert len(arrivals) == 3
    gap = arrivals[-1] - arrivals[0]
    assert gap >= 0.4, f"first chunk arrived only {gap:.3f} s before the last: the stream was buffered"


def test_count_tokens(client):
    assert client.models.count_tokens(model="gemini-2.5-flash", contents="Say hello").total_tokens == 12


def test_embed_content(client):
    response = client.models.embed_content(model="text-embedding-004", contents="hello")
    assert response.embeddings[0].values == pytest.approx(EMBEDDING)
    response = client.models.embed_content(model="text-embedding-004", contents=["one", "two"])
    assert [e.values for e in response.embeddings] == [pytest.approx(EMBEDDING)] * 2


def test_models_list_and_get(client):
    assert [m.name for m in client.models.list(config={"page_size": 1})] == FAKE_MODELS
    model = client.models.get(model="gemini-2.5-pro")
    assert (model.name, model.input_token_limit) == ("models/gemini-2.5-pro", 1_048_576)


def test_hashed_proxy_key_works(worker):
    """PROXY_KEYS may hold `sha256:<hex>` instead of the key itself."""
    hashed = genai_client(worker.url, HASHED_PROXY_KEY)
    assert hashed.models.generate_content(model="gemini-2.5-flash", contents="hi").text == FULL_TEXT


def test_bad_proxy_key_is_401_in_gemini_shape(worker):
    bad = genai_client(worker.url, BAD_KEY)
    with pytest.raises(errors.ClientError) as caught:
        bad.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert caught.value.code == 401
    assert caught.value.status == "UNAUTHENTICATED"
    assert not leaked_secrets(error_text(caught.value))
    # The same with the key in the query and with none at all.
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    for params, headers in [({"key": BAD_KEY}, {}), ({}, {})]:
        r = requests.post(worker.url + path, params=params, headers=headers, json={"contents": []}, timeout=30)
        assert r.status_code == 401, r.text
        assert r.json()["error"]["status"] == "UNAUTHENTICATED"


def test_upstream_errors_pass_through_without_keys(client):
    with pytest.raises(errors.ClientError) as caught:
        client.models.get(model="no-such-model")
    assert caught.value.code == 404
    assert "no-such-model" in (caught.value.message or "")
    assert not leaked_secrets(error_text(caught.value))


def test_requests_refused_before_upstream(worker):
    """Unknown paths and malformed JSON are answered by the Worker itself."""
    headers = {"x-goog-api-key": worker.proxy_key, "content-type": "application/json"}
    r = requests.get(worker.url + "/v2/nothing", headers=headers, timeout=30)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    r = requests.post(
        worker.url + "/v1beta/models/gemini-2.5-flash:generateContent", data="{oops", headers=headers, timeout=30
    )
    assert r.status_code == 400 and "Invalid JSON" in r.json()["error"]["message"]
    assert r.headers.get("x-request-id")


def test_healthz(worker):
    health = requests.get(worker.url + "/healthz", timeout=30).json()
    assert health["status"] == "ok"
    assert health["upstream_keys"] == 5
    assert health["proxy_keys"] == 2
    assert health["dropped_log_records"] == 0


@pytest.mark.parametrize("base", ["/v1beta/openai/", "/v1"])
def test_openai_chat(worker, base):
    oai = openai_client(worker.url, worker.proxy_key, base)
    completion = oai.chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Say hello"}]
    )
    assert completion.choices[0].message.content == FULL_TEXT
    assert (completion.usage.prompt_tokens, completion.usage.total_tokens) == (12, 19)


@pytest.mark.parametrize("base", ["/v1beta/openai/", "/v1"])
def test_openai_chat_stream(worker, base):
    oai = openai_client(worker.url, worker.proxy_key, base)
    chunks = list(
        oai.chat.completions.create(
            model="gemini-2.5-flash",
            messages=[{"role": "user", "content": "Say hello"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == FULL_TEXT
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and (usage[0].prompt_tokens, usage[0].total_tokens) == (12, 21)


def test_openai_embeddings_and_models(worker):
    oai = openai_client(worker.url, worker.proxy_key, "/v1")
    response = oai.embeddings.create(model="text-embedding-004", input=["one", "two"])
    assert [d.index for d in response.data] == [0, 1]
    assert all(d.embedding == pytest.approx(EMBEDDING) for d in response.data)
    assert [m.id for m in oai.models.list()] == FAKE_MODELS
    assert oai.models.retrieve("gemini-2.5-flash").id == "models/gemini-2.5-flash"


@pytest.mark.parametrize("base", ["/v1beta/openai/", "/v1"])
def test_openai_bad_key_is_401_in_openai_shape(worker, base):
    bad = openai_client(worker.url, BAD_KEY, base)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(
            model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 401
    body = caught.value.response.json()
    assert body["error"]["type"] == "authentication_error"
    assert body["error"]["code"] == "invalid_api_key"
    assert "status" not in body["error"]
    assert not leaked_secrets(f"{caught.value} {caught.value.body} {caught.value.response.text}")
