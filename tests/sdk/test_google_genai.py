"""The official google-genai SDK, pointed at the proxy with a proxy key."""

from __future__ import annotations

import time

import pytest
from google import genai
from google.genai import errors, types

from gp_harness import EMBEDDING, FAKE_MODELS, FULL_TEXT, leaked_secrets
from sdk_clients import error_text, genai_client


@pytest.fixture(scope="module")
def client(stack) -> genai.Client:
    return genai_client(stack.url, stack.proxy_key)


def test_generate_content(client):
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert response.text == FULL_TEXT
    usage = response.usage_metadata
    assert usage is not None
    assert usage.prompt_token_count == 12
    assert usage.candidates_token_count == 7
    assert usage.total_token_count == 19
    assert response.candidates[0].finish_reason == types.FinishReason.STOP


def test_generate_content_stream(client):
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="Say hello"))
    assert len(chunks) == 3
    assert "".join(c.text or "" for c in chunks) == FULL_TEXT
    final = chunks[-1].usage_metadata
    assert final is not None
    assert (final.prompt_token_count, final.candidates_token_count, final.total_token_count) == (12, 9, 21)


def test_stream_chunks_arrive_as_produced(client):
    """fake-gemini waits 300 ms before each chunk of a `slowstream` model. If the
    proxy forwards chunks as they come, the first one reaches the SDK ~600 ms
    before the last; if it buffered the stream, all three arrive together."""
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
    response = client.models.count_tokens(model="gemini-2.5-flash", contents="Say hello")
    assert response.total_tokens == 12


def test_embed_content(client):
    response = client.models.embed_content(model="text-embedding-004", contents="hello")
    assert response.embeddings is not None and len(response.embeddings) == 1
    assert response.embeddings[0].values == pytest.approx(EMBEDDING)

    response = client.models.embed_content(model="text-embedding-004", contents=["one", "two"])
    assert [e.values for e in response.embeddings] == [pytest.approx(EMBEDDING)] * 2


def test_models_list_follows_pages(client, stack):
    pager = client.models.list(config={"page_size": 1})
    names = [m.name for m in pager]
    assert names == FAKE_MODELS
    # Each page came through the proxy: list calls of one model each, the later
    # ones carrying the page token the previous page returned. (Failover may
    # repeat a page upstream, so count distinct tokens.)
    listed = [
        r for r in stack.fake_requests()
        if r["path"] in ("/v1/models", "/v1beta/models") and "pageSize=1" in (r["query"] or "")
    ]
    tokens = {q.partition("pageToken=")[2] for q in (r["query"] for r in listed)}
    assert tokens >= {"", "1", "2"}


def test_models_get(client):
    model = client.models.get(model="gemini-2.5-pro")
    assert model.name == "models/gemini-2.5-pro"
    assert model.display_name == "Gemini 2.5 Pro"
    assert model.input_token_limit == 1_048_576


def test_bad_proxy_key_is_401(stack):
    bad = genai_client(stack.url, "gp-" + "0" * 48)
    with pytest.raises(errors.ClientError) as caught:
        bad.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    assert caught.value.code == 401
    assert caught.value.status == "UNAUTHENTICATED"
    assert not leaked_secrets(error_text(caught.value))


def test_upstream_errors_carry_no_key(client):
    """An upstream error passed through to the SDK (unknown model) names no key."""
    with pytest.raises(errors.ClientError) as caught:
        client.models.get(model="no-such-model")
    assert caught.value.code == 404
    assert "no-such-model" in (caught.value.message or "")
    assert not leaked_secrets(error_text(caught.value))


def test_suspended_key_is_not_echoed(broken_only_stack):
    """Google echoes a suspended key in its 403 message. With that key as the
    proxy's only one, the SDK's error is built from that answer and must still
    not contain the key."""
    broken = genai_client(broken_only_stack.url, broken_only_stack.proxy_key)
    with pytest.raises(errors.APIError) as caught:
        broken.models.generate_content(model="gemini-2.5-flash", contents="Say hello")
    text = error_text(caught.value)
    assert caught.value.code >= 400
    assert "suspended" in text, text  # the answer did come from that key's error
    assert not leaked_secrets(text), text
    # The fake did get the key (in the header): it really was tried.
    tried = [r for r in broken_only_stack.fake_requests() if r["api_key"] == broken_only_stack.secrets["suspended"]]
    assert tried
