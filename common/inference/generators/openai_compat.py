"""Any OpenAI-compatible chat-completions server (vLLM, Ollama, ...) over plain httpx.

`POST {AI_INFRA_OPENAI_BASE_URL}/chat/completions`, with `stream: true` for server-sent events;
usage comes from the response (streams ask for it with `stream_options.include_usage` and report
None when the server does not send it). Retries as every model client does (`model_retry`);
streams retry only until the response headers arrive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx

from common.inference.generators import prompt
from common.inference.generators.base import GenerationRequest, GenerationResult, parse_citations
from common.inference.retry import REQUEST_TIMEOUT_SECONDS, RetryPolicy, classify, give_up
from common.platform.config import Settings
from common.platform.errors import ModelUnavailableError


class OpenAICompatibleGenerator:
    """Generator for an OpenAI-compatible endpoint; one pooled httpx client per instance."""

    def __init__(self, settings: Settings, *, sleep: Callable[[float], None] | None = None) -> None:
        if not settings.openai_base_url:
            raise ValueError("AI_INFRA_OPENAI_BASE_URL is required for the openai provider")
        self.model_name = settings.resolved_generation_model
        self._settings = settings
        self._url = settings.openai_base_url.rstrip("/") + "/chat/completions"
        headers = {"Accept": "application/json"}
        if settings.openai_api_key:
            headers["Authorization"] = f"Bearer {settings.openai_api_key}"
        self._http = httpx.Client(timeout=REQUEST_TIMEOUT_SECONDS, headers=headers)
        self._retry = RetryPolicy.from_settings(settings, sleep=sleep)

    def _payload(self, request: GenerationRequest, *, stream: bool) -> dict[str, Any]:
        temperature = request.temperature
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": [
                {"role": "system", "content": prompt.system_prompt(request, self._settings)},
                {"role": "user", "content": prompt.user_prompt(request)},
            ],
            "temperature": self._settings.default_temperature
            if temperature is None
            else temperature,
            "max_tokens": request.max_output_tokens or self._settings.max_output_tokens,
            "stream": stream,
        }
        if stream:
            payload["stream_options"] = {"include_usage": True}
        return payload

    def generate(self, request: GenerationRequest) -> GenerationResult:
        payload = self._payload(request, stream=False)

        def post() -> Any:
            response = self._http.post(self._url, json=payload)
            response.raise_for_status()
            return response.json()

        data = self._retry.call(post, what=f"generation with {self.model_name}")
        try:
            text = data["choices"][0]["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as error:
            raise ModelUnavailableError(
                f"{self.model_name} sent a malformed chat completion"
            ) from error
        return self._result(request, text, data.get("usage"))

    def stream(self, request: GenerationRequest) -> Iterator[str | GenerationResult]:
        payload = self._payload(request, stream=True)
        what = f"streaming generation with {self.model_name}"
        with ExitStack() as stack:

            def open_stream() -> httpx.Response:
                inner = ExitStack()
                response = inner.enter_context(self._http.stream("POST", self._url, json=payload))
                if response.is_error:
                    response.read()
                    inner.close()
                    response.raise_for_status()
                stack.push(inner)
                return response

            response = self._retry.call(open_stream, what=what)
            parts: list[str] = []
            usage: dict[str, Any] | None = None
            for data in _events(response, what):
                if data.get("usage"):
                    usage = data["usage"]
                for choice in data.get("choices") or []:
                    delta = (choice.get("delta") or {}).get("content")
                    if delta:
                        parts.append(delta)
                        yield delta
        yield self._result(request, "".join(parts), usage)

    def _result(
        self, request: GenerationRequest, text: str, usage: dict[str, Any] | None
    ) -> GenerationResult:
        usage = usage or {}
        return GenerationResult(
            text=text,
            cited=parse_citations(text, len(request.sources)),
            model=self.model_name,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )


def _events(response: httpx.Response, what: str) -> Iterator[dict[str, Any]]:
    """The JSON payloads of a chat-completions SSE stream, up to `data: [DONE]`."""
    try:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:") :].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except ValueError as error:
                raise ModelUnavailableError(f"{what}: malformed stream event") from error
            if isinstance(event, dict):
                yield event
    except httpx.HTTPError as error:
        failure = classify(error)
        if failure is None:  # pragma: no cover - every httpx error classifies
            raise
        raise give_up(failure, what=what, attempts=1) from error
