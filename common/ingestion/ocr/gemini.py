"""OCR by Gemini on Vertex AI (`AI_INFRA_PARSER=gemini`), as Vertex RAG Engine's LLM parser does:
each page image goes inline in one generateContent request with a transcription prompt.

A page is sent as PNG (lossless: thin strokes survive), or JPEG when a photo would not fit the
API's limit for inline data (7 MB a file, see `common.localstack.vertex_standin`), at most
`MAX_SIDE` pixels on its long side (the model scales bigger images down itself; sending more
only costs upload time). 429/5xx are retried by the shared policy (`common.inference.retry`),
every page of a document sharing one backoff; a request the API refuses (bad model, credentials,
image) fails the document with the API's reason. Pages go `CONCURRENCY` at a time: they wait on
the network, not on this machine's CPU.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.inference.embedders.vertex import LazyVertexClient
from common.inference.retry import ModelRequestError, shared_backoff
from common.platform.config import Settings
from common.platform.errors import PermanentIngestionError

if TYPE_CHECKING:
    from google.genai import types
    from PIL.Image import Image

logger = logging.getLogger(__name__)

CONCURRENCY = 4
MAX_SIDE = 3072
# Encoded bytes of one page image, below the API's 7 MB for inline data (base64 adds a third in
# transit, still far below its 20 MB a request).
MAX_IMAGE_BYTES = 6_000_000
MAX_OUTPUT_TOKENS = 8192
NO_TEXT = "[no text]"
PROMPT = (
    "Transcribe all text in this page image exactly as written, in reading order (columns left "
    "to right, each top to bottom). One line of output per line of text, a blank line between "
    "paragraphs; table rows as lines with their cells separated by ' | '. Keep the original "
    "language and spelling. Output only the text: no commentary, no descriptions of images, no "
    f"Markdown fences. If the image holds no text, output exactly {NO_TEXT}"
)
_FENCE = re.compile(r"^```[a-z]*\n(.*)\n```$", re.DOTALL)


class GeminiOcr:
    """`OcrEngine` over Gemini; the client is built on the first page."""

    name = "gemini"
    concurrency = CONCURRENCY

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Any = None,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.model_name = settings.parser_model
        self._retry, self._gate = shared_backoff(settings, sleep)
        self._get_client = LazyVertexClient(settings, credentials)

    def recognize(self, image: object) -> str:
        from google.genai import types

        data, mime_type = encode_page(image)
        client = self._get_client()
        contents = [
            types.Content(
                role="user",
                parts=[
                    types.Part.from_bytes(data=data, mime_type=mime_type),
                    types.Part.from_text(text=PROMPT),
                ],
            )
        ]
        config = self._config()
        try:
            response = self._retry.call(
                lambda: client.models.generate_content(
                    model=self.model_name, contents=contents, config=config
                ),
                what=f"OCR with {self.model_name}",
                gate=self._gate,
            )
        except ModelRequestError as error:
            raise PermanentIngestionError(
                f"the OCR model refused a page image ({error}); check AI_INFRA_PARSER_MODEL "
                "and its access, then reprocess"
            ) from error
        return _transcript(response)

    def _config(self) -> types.GenerateContentConfig:
        from google.genai import types

        thinking = None
        if self.model_name.startswith("gemini-2.5-flash"):
            # Transcription needs no reasoning; thinking tokens are billed as output.
            thinking = types.ThinkingConfig(thinking_budget=0)
        return types.GenerateContentConfig(
            temperature=0.0, max_output_tokens=MAX_OUTPUT_TOKENS, thinking_config=thinking
        )


def encode_page(image: object) -> tuple[bytes, str]:
    """The page as PNG, else JPEG, within `MAX_SIDE` and `MAX_IMAGE_BYTES` (halving the pixels
    until it fits)."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(image).__name__}")
    page = image if image.mode in ("L", "RGB") else image.convert("RGB")
    page = _shrunk(page, MAX_SIDE / max(page.size))
    while True:
        for kind, options in (("PNG", {"compress_level": 3}), ("JPEG", {"quality": 85})):
            buffer = io.BytesIO()
            page.save(buffer, format=kind, **options)
            if buffer.tell() <= MAX_IMAGE_BYTES:
                return buffer.getvalue(), f"image/{kind.lower()}"
        page = _shrunk(page, 0.7)


def _shrunk(page: Image, scale: float) -> Image:
    if scale >= 1:
        return page
    size = (max(1, round(page.width * scale)), max(1, round(page.height * scale)))
    return page.resize(size)


def _transcript(response: Any) -> str:
    """The answer's text, "" for a page without text; a page the model would not transcribe
    (safety, recitation) is logged and read as empty rather than failing the document."""
    candidates = response.candidates or []
    parts = candidates[0].content.parts if candidates and candidates[0].content else None
    text = "".join(part.text or "" for part in parts or [] if not part.thought).strip()
    if not text:
        reason = candidates[0].finish_reason if candidates else None
        logger.warning(
            "OCR model returned no text for a page",
            extra={"finish_reason": str(getattr(reason, "value", reason) or "unknown")},
        )
        return ""
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    return "" if text == NO_TEXT else text
