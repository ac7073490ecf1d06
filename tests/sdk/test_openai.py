"""The official openai SDK against the proxy's OpenAI-compatible routes, under
both base URLs clients use: Google's `/v1beta/openai/` and the `/v1` alias."""

from __future__ import annotations

import openai
import pytest
from openai import OpenAI

from gp_harness import EMBEDDING, FAKE_MODELS, FULL_TEXT, leaked_secrets
from sdk_clients import openai_client

BASES = ["/v1beta/openai/", "/v1"]


@pytest.fixture(params=BASES, ids=["v1beta-openai", "v1"])
def client(request, stack) -> OpenAI:
    return openai_client(stack.url, stack.proxy_key, request.param)


def test_chat_completion(client):
    completion = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Say hello"}],
    )
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == FULL_TEXT
    assert choice.finish_reason == "stop"
    assert completion.usage is not None
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 7, 19)


def test_chat_completion_stream_with_usage(client):
    stream = client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "user", "content": "Say hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content == FULL_TEXT
    assert any(c.choices and c.choices[0].finish_reason == "stop" for c in chunks)
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert len(usage_chunks) == 1, chunks
    usage = usage_chunks[0].usage
    assert usage_chunks[0].choices == []
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (12, 9, 21)


def test_embeddings(client):
    response = client.embeddings.create(model="text-embedding-004", input="hello")
    assert len(response.data) == 1
    assert response.data[0].embedding == pytest.approx(EMBEDDING)

    response = client.embeddings.create(model="text-embedding-004", input=["one", "two"])
    assert [d.index for d in response.data] == [0, 1]
    assert all(d.embedding == pytest.approx(EMBEDDING) for d in response.data)


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert ids == FAKE_MODELS
    model = client.models.retrieve("gemini-2.5-flash")
    assert model.id == "models/gemini-2.5-flash"
    assert model.owned_by == "google"


@pytest.mark.parametrize("base", BASES)
def test_bad_proxy_key_is_authentication_error(stack, base):
    bad = openai_client(stack.url, "gp-" + "0" * 48, base)
    with pytest.raises(openai.AuthenticationError) as caught:
        bad.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 401
    assert not leaked_secrets(f"{caught.value} {caught.value.body} {caught.value.response.text}")


def test_suspended_key_is_not_echoed(broken_only_stack):
    """The suspended key's 403 echoes the key; the proxy's answer built from it
    (its only key) must not."""
    broken = openai_client(broken_only_stack.url, broken_only_stack.proxy_key, "/v1beta/openai/")
    with pytest.raises(openai.APIStatusError) as caught:
        broken.chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    text = f"{caught.value} {caught.value.body} {caught.value.response.text}"
    assert "suspended" in text, text
    assert not leaked_secrets(text), text
