"""Fake AI servers that speak the real protocols, for tests and benchmarks.

with FakeGemini() as fake:
    settings = Settings(..., gemini_api_key="k", gemini_base_url=fake.base_url)
    fake.script(["500", "ok"])      # one-shot behaviours, then `fake.mode` again
    ...
    assert len(fake.requests) == 2
"""

from tests.fakes.base import DEFAULT_ANSWER, EXTRA_FIELDS, MODES, FakeAIServer, RecordedRequest
from tests.fakes.fake_gemini import FakeGemini
from tests.fakes.fake_openai import FakeOpenAI

__all__ = [
    "DEFAULT_ANSWER",
    "EXTRA_FIELDS",
    "MODES",
    "FakeAIServer",
    "FakeGemini",
    "FakeOpenAI",
    "RecordedRequest",
]
