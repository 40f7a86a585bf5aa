"""A fake OpenAI-compatible API: `POST /v1/chat/completions` (and `/chat/completions`).

Run it alone for benchmarks: `python -m tests.fakes.fake_openai --port 8766 --delay 0.5`.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, ClassVar

from tests.fakes.base import FakeAIServer, Reply, serve_forever_cli

_PATHS = ("/v1/chat/completions", "/chat/completions")

_ERRORS = {
    400: ("invalid_request_error", "invalid_request", "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    404: ("invalid_request_error", "not_found", "Not found."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
}


class FakeOpenAI(FakeAIServer):
    """Speaks OpenAI's chat completions. Set `.expected_api_key` to demand a bearer token."""

    name: ClassVar[str] = "openai"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.expected_api_key: str | None = None  # local servers (Ollama, vLLM) need none
        self._ids = itertools.count(1)

    def route(self, method: str, path: str) -> str | None:
        if method != "POST" or path.split("?", 1)[0] not in _PATHS:
            return None
        return "fake-model"  # the real model name is in the body

    def check_auth(self, headers: dict[str, str]) -> Reply | None:
        if self.expected_api_key is None:
            return None
        if headers.get("authorization") != f"Bearer {self.expected_api_key}":
            return self.error_reply(401)
        return None

    def answer_reply(self, model: str, text: str, body: Any) -> Reply:
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            model = body["model"]
        prompt_tokens = len(str(body)) // 4
        answer_tokens = max(1, len(text) // 4)
        return Reply(
            200,
            {
                "id": f"chatcmpl-fake-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": answer_tokens,
                    "total_tokens": prompt_tokens + answer_tokens,
                },
                "system_fingerprint": "fp_fake",
            },
        )

    def error_reply(self, status: int, headers: dict[str, str] | None = None) -> Reply:
        kind, code, message = _ERRORS.get(status, ("server_error", None, "Error."))
        return Reply(
            status,
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            headers or {},
        )


if __name__ == "__main__":
    serve_forever_cli(FakeOpenAI)
