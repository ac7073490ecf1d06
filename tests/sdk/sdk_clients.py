"""The official SDK clients as every suite builds them, pointed at a proxy (the binary
or the Worker) with a proxy key, and the text an application could print of an error."""

from __future__ import annotations

from google import genai
from google.genai import errors, types
from openai import OpenAI


def genai_client(url: str, key: str) -> genai.Client:
    # vertexai=False and an explicit key: no GOOGLE_* environment variable may
    # redirect the SDK anywhere but the proxy.
    return genai.Client(api_key=key, vertexai=False, http_options=types.HttpOptions(base_url=url, timeout=30_000))


def openai_client(url: str, key: str, base: str = "/v1beta/openai/") -> OpenAI:
    # No SDK retries: each call is one request to the proxy, so what the proxy
    # answers first is what the test sees.
    return OpenAI(base_url=url + base, api_key=key, max_retries=0, timeout=30)


def error_text(error: errors.APIError) -> str:
    """Everything an application could print about the error."""
    body = ""
    try:
        body = error.response.text  # type: ignore[union-attr]
    except Exception:
        pass
    return f"{error} | {error.message} | {error.details} | {body}"
