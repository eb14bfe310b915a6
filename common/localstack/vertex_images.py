"""The Vertex AI stand-in as an OCR parser: Gemini's limits for inline images, and their text.

A `generateContent` request carrying images (`AI_INFRA_PARSER=gemini`) is refused as the real
API refuses it (too big a request, too many images, a type it does not take, an image over the
inline limit) and otherwise answered with each image's text as the local OCR engine reads it.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import threading
from collections.abc import Callable
from typing import Any

# Vertex AI's limits for images in one generateContent request to gemini-2.5-flash ("Image
# understanding", cloud.google.com/vertex-ai/generative-ai/docs/multimodal/image-understanding):
# 3,000 images a prompt, 7 MB a file for inline data, these MIME types. The request as a whole:
# 20 MB ("Supported input files and requirements for the Vertex AI Gemini API",
# firebase.google.com/docs/vertex-ai/input-file-requirements); Google's front end refuses a
# bigger body with "Request payload size exceeds the limit: N bytes." (400). The per-file
# message follows the API's own for Cloud Storage files (googleapis/js-genai#1391), which also
# shows its "MB" are MiB (30 MB enforced as 31457280 bytes). Image input costs 258 tokens up to
# 384x384 pixels, else 258 per 768x768 tile ("Understand and count tokens",
# ai.google.dev/gemini-api/docs/tokens).
MAX_IMAGES_PER_PROMPT = 3000
MAX_INLINE_IMAGE_BYTES = 7 * 1024 * 1024
MAX_REQUEST_BYTES = 20 * 1024 * 1024
IMAGE_MIME_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
IMAGE_TILE_TOKENS = 258


def inline_images(body: Any) -> list[tuple[str, str]]:
    """(MIME type, base64 data) of every inline data part of a generateContent request."""
    if not isinstance(body, dict):
        return []
    found = []
    for content in body.get("contents") or []:
        for part in content.get("parts") or []:
            blob = part.get("inlineData") or part.get("inline_data")
            if isinstance(blob, dict):
                # proto3 JSON: lowerCamelCase or the proto's snake_case (google-genai sends both)
                mime_type = blob.get("mimeType") or blob.get("mime_type") or ""
                found.append((str(mime_type), str(blob.get("data") or "")))
    return found


def _image_tokens(data: bytes) -> int:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
    if width <= 384 and height <= 384:
        return IMAGE_TILE_TOKENS
    return math.ceil(width / 768) * math.ceil(height / 768) * IMAGE_TILE_TOKENS


_local_ocr_lock = threading.Lock()
_local_ocr: Any = None


def read_with_local_ocr(data: bytes) -> str:
    """One image's text as `AI_INFRA_PARSER=local` reads it (the models load once a process)."""
    global _local_ocr
    from PIL import Image

    from common.ingestion.ocr.local import LocalOcr

    with _local_ocr_lock:
        if _local_ocr is None:
            _local_ocr = LocalOcr()
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return str(_local_ocr.recognize(image))


def read_images(
    body: Any, content_length: int, transcribe: Callable[[bytes], str]
) -> tuple[str, int] | str:
    """The images' text and their prompt tokens, or the API's refusal message."""
    images = inline_images(body)
    if content_length > MAX_REQUEST_BYTES:
        return f"Request payload size exceeds the limit: {MAX_REQUEST_BYTES} bytes."
    if len(images) > MAX_IMAGES_PER_PROMPT:
        return (
            f"The request has {len(images)} images, which exceeds the maximum number of "
            f"images allowed per prompt ({MAX_IMAGES_PER_PROMPT})."
        )
    decoded = []
    for mime_type, data in images:
        try:  # proto3 JSON takes standard or URL-safe base64, padded or not
            standard = data.replace("-", "+").replace("_", "/")
            raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
        except (binascii.Error, ValueError):
            return "Invalid value at 'contents[0].parts[0].inline_data.data': not base64"
        if mime_type not in IMAGE_MIME_TYPES:
            return f"Unsupported MIME type: {mime_type}"
        if len(raw) > MAX_INLINE_IMAGE_BYTES:
            return (
                f"The file size of inline data is {len(raw)}, which exceeds max allowed file "
                f"size of {MAX_INLINE_IMAGE_BYTES} for `{mime_type}` files. Reduce the file "
                "size by lowering the image resolution."
            )
        decoded.append(raw)
    from PIL import Image

    try:
        tokens = sum(_image_tokens(raw) for raw in decoded)
        return "\n\n".join(transcribe(raw) for raw in decoded), tokens
    except (OSError, ValueError, Image.DecompressionBombError):  # not a decodable image
        return "Provided image is not valid."
