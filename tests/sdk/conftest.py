"""Session fixtures: a fake Gemini upstream and a gemini-proxy in front of it.

Nothing is built here; see gp_harness.py for where the binaries come from.
Every child process is stopped in fixture teardown, also when a test or the
fixture itself fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from gp_harness import UPSTREAM_KEYS, ProxyStack, fake_url, find_binary, start_proxy  # noqa: F401 (fake_url: a fixture)


@pytest.fixture(scope="session")
def proxy_bin() -> Path:
    return find_binary("GEMINI_PROXY_BIN", "gemini-proxy")


@pytest.fixture(scope="session")
def stack(proxy_bin, fake_url, tmp_path_factory) -> Iterator[ProxyStack]:
    """The shared proxy: five upstream keys, four of which fail in their own way."""
    stack = None
    try:
        stack = start_proxy(proxy_bin, fake_url, tmp_path_factory.mktemp("proxy"), UPSTREAM_KEYS)
        yield stack
    finally:
        if stack is not None and stack.child is not None:
            stack.child.stop()


@pytest.fixture
def broken_only_stack(proxy_bin, fake_url, tmp_path) -> Iterator[ProxyStack]:
    """A fresh proxy whose only upstream key is suspended (Google echoes it in
    the error), so the client's answer is built from that key's error."""
    stack = None
    try:
        stack = start_proxy(
            proxy_bin, fake_url, tmp_path / "broken", {"suspended": UPSTREAM_KEYS["suspended"]},
            name="gemini-proxy-broken",
        )
        yield stack
    finally:
        if stack is not None and stack.child is not None:
            stack.child.stop()
