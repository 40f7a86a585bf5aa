"""Fake AI servers that speak the real protocols, for tests and benchmarks.

    from tests.fakes import FakeGemini

    with FakeGemini() as fake:
        settings = Settings(..., gemini_api_key="k", gemini_base_url=fake.base_url)
        fake.script(["500", "ok"])      # one-shot behaviours, then `fake.mode` again
        ...
        assert len(fake.requests) == 2

The classes are imported lazily so that `python -m tests.fakes.fake_gemini` does not import
its own module twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.fakes.base import (
        DEFAULT_ANSWER,
        EXTRA_FIELDS,
        MODES,
        FakeAIServer,
        RecordedRequest,
    )
    from tests.fakes.fake_gemini import FakeGemini
    from tests.fakes.fake_openai import FakeOpenAI

_WHERE = {
    "DEFAULT_ANSWER": "base",
    "EXTRA_FIELDS": "base",
    "MODES": "base",
    "FakeAIServer": "base",
    "RecordedRequest": "base",
    "FakeGemini": "fake_gemini",
    "FakeOpenAI": "fake_openai",
}

__all__ = [
    "DEFAULT_ANSWER",
    "EXTRA_FIELDS",
    "MODES",
    "FakeAIServer",
    "FakeGemini",
    "FakeOpenAI",
    "RecordedRequest",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
