"""A fake Gemini API: `POST /{version}/models/{model}:generateContent`, answered like Google's.

Run it alone for benchmarks: `python -m tests.fakes.fake_gemini --port 8765 --delay 0.5`.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, ClassVar

from tests.fakes.base import FakeAIServer, Reply, serve_forever_cli

_PATH = re.compile(r"^/(?P<version>[\w.-]+)/models/(?P<model>[\w.-]+):generateContent$")

_STATUS_NAMES = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Method doesn't allow unregistered callers. Please use API Key."),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report."),
}


class FakeGemini(FakeAIServer):
    """Speaks Gemini's REST `generateContent`; needs an `x-goog-api-key` header."""

    name: ClassVar[str] = "gemini"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.expected_api_key: str | None = None  # None: any non-empty key is accepted
        # Seconds for the google.rpc.RetryInfo detail Gemini puts in its 429 bodies (None: omit).
        self.retry_info: float | None = None
        self._ids = itertools.count(1)

    def route(self, method: str, path: str) -> str | None:
        match = _PATH.match(path.split("?", 1)[0])
        return match["model"] if method == "POST" and match else None

    def check_auth(self, headers: dict[str, str]) -> Reply | None:
        key = headers.get("x-goog-api-key", "")
        if not key or (self.expected_api_key is not None and key != self.expected_api_key):
            return self.error_reply(401)
        return None

    def answer_reply(self, model: str, text: str, body: Any) -> Reply:
        prompt_tokens = len(str(body)) // 4
        answer_tokens = max(1, len(text) // 4)
        return Reply(
            200,
            {
                "candidates": [
                    {
                        "content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": "STOP",
                        "index": 0,
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": answer_tokens,
                    "totalTokenCount": prompt_tokens + answer_tokens,
                    "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
                },
                "modelVersion": model,
                "responseId": f"fake-{next(self._ids)}",
            },
        )

    def error_reply(self, status: int, headers: dict[str, str] | None = None) -> Reply:
        name, message = _STATUS_NAMES.get(status, ("UNKNOWN", "Unknown error."))
        error: dict[str, Any] = {"code": status, "message": message, "status": name}
        if status == 429 and self.retry_info is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{self.retry_info:g}s",
                }
            ]
        return Reply(status, {"error": error}, headers or {})


if __name__ == "__main__":
    serve_forever_cli(FakeGemini)
