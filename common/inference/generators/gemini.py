"""Gemini on Vertex AI through google-genai: system instruction, sampling limits, token usage.

Streaming retries only until the first event arrives: once text has reached the caller a retry
would repeat it, so a later failure ends the stream with `ModelUnavailableError`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from common.inference.embedders.vertex import LazyVertexClient
from common.inference.generators import prompt
from common.inference.generators.base import GenerationRequest, GenerationResult, parse_citations
from common.inference.retry import RetryPolicy, classify, give_up
from common.platform.config import Settings
from common.platform.errors import ModelUnavailableError

if TYPE_CHECKING:
    from google.genai import types

logger = logging.getLogger(__name__)


class GeminiGenerator:
    """Generator for Gemini; the client is built on first use."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.model_name = settings.resolved_generation_model
        self._settings = settings
        self._retry = RetryPolicy.from_settings(settings, sleep=sleep)
        self._get_client = LazyVertexClient(settings, credentials)

    def _config(self, request: GenerationRequest) -> types.GenerateContentConfig:
        from google.genai import types

        temperature = request.temperature
        return types.GenerateContentConfig(
            system_instruction=prompt.system_prompt(request, self._settings),
            temperature=self._settings.default_temperature if temperature is None else temperature,
            max_output_tokens=request.max_output_tokens or self._settings.max_output_tokens,
        )

    def generate(self, request: GenerationRequest) -> GenerationResult:
        client = self._get_client()
        config = self._config(request)
        contents = prompt.user_prompt(request)
        response = self._retry.call(
            lambda: client.models.generate_content(
                model=self.model_name, contents=contents, config=config
            ),
            what=f"generation with {self.model_name}",
        )
        text = _text(response) or _empty_answer(response)
        return self._result(request, text, response.usage_metadata)

    def stream(self, request: GenerationRequest) -> Iterator[str | GenerationResult]:
        client = self._get_client()
        config = self._config(request)
        contents = prompt.user_prompt(request)
        what = f"streaming generation with {self.model_name}"

        def open_stream() -> tuple[Any, Iterator[Any]]:
            events = iter(
                client.models.generate_content_stream(
                    model=self.model_name, contents=contents, config=config
                )
            )
            return next(events, None), events

        first, events = self._retry.call(open_stream, what=what)
        parts: list[str] = []
        usage = None
        last = first
        event = first
        while event is not None:
            last = event
            if event.usage_metadata is not None:
                usage = event.usage_metadata
            delta = _text(event)
            if delta:
                parts.append(delta)
                yield delta
            event = _next_event(events, what)
        text = "".join(parts)
        if not text and last is not None:
            text = _empty_answer(last)
            yield text
        yield self._result(request, text, usage)

    def _result(self, request: GenerationRequest, text: str, usage: Any) -> GenerationResult:
        return GenerationResult(
            text=text,
            cited=parse_citations(text, len(request.sources)),
            model=self.model_name,
            prompt_tokens=getattr(usage, "prompt_token_count", None),
            completion_tokens=getattr(usage, "candidates_token_count", None),
        )


def _text(response: Any) -> str:
    """The text parts of the first candidate (without the SDK's warning about other parts)."""
    candidates = response.candidates or []
    if not candidates or candidates[0].content is None:
        return ""
    return "".join(
        part.text or "" for part in candidates[0].content.parts or [] if not part.thought
    )


def _empty_answer(response: Any) -> str:
    """An honest answer when the model returned no text (safety block, token limit, ...)."""
    candidates = response.candidates or []
    reason = candidates[0].finish_reason if candidates else None
    name = str(getattr(reason, "value", reason) or "unknown")
    logger.warning("model returned no text", extra={"finish_reason": name})
    return f"The model returned no answer (finish reason: {name})."


def _next_event(events: Iterator[Any], what: str) -> Any:
    try:
        return next(events, None)
    except Exception as error:
        failure = classify(error)
        if failure is None:
            raise
        raise (
            give_up(failure, what=what, attempts=1)
            if failure.retryable
            else ModelUnavailableError(f"{what} failed mid-stream: HTTP {failure.status}")
        ) from error
