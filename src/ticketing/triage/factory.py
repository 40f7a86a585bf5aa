"""Pick the triage provider the settings ask for."""

from __future__ import annotations

from ticketing.config import Settings
from ticketing.triage.base import TriageProvider


def build_provider(settings: Settings, name: str | None = None) -> TriageProvider:
    """The provider called `name` ("gemini", "openai", "local"), else the configured one.

    Building never touches the network; a provider that lacks its settings (no API key, no
    base URL) is still returned and raises TriageError on use, so triage falls back visibly.
    Unknown names raise ValueError.
    """
    chosen = name if name is not None else settings.resolved_ai_provider
    # Imports are local so that running with one provider never imports the other's SDK.
    if chosen == "gemini":
        from ticketing.triage.gemini import GeminiProvider

        return GeminiProvider(settings)
    if chosen == "openai":
        from ticketing.triage.openai_provider import OpenAIProvider

        return OpenAIProvider(settings)
    if chosen == "local":
        from ticketing.triage.local import LocalAnalyzer

        return LocalAnalyzer()
    raise ValueError(f"unknown triage provider {chosen!r}; expected gemini, openai or local")
