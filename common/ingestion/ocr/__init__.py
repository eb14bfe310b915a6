"""Reading page images (scans, photos, image-only PDF pages): the OCR engine the settings choose.

`AI_INFRA_PARSER` picks it (see `ParserProvider`): `local` runs PP-OCR models on this machine
(`local`), `gemini` asks Gemini on Vertex AI to transcribe each page (`gemini`), `none` turns
OCR off. Extractors call `recognize_pages` (`pages`), which keeps long scans inside the job's
time budget. May import `inference` and `platform`.
"""

from __future__ import annotations

import threading
import time

from common.ingestion.extractors.base import OcrEngine
from common.platform.config import ParserProvider, Settings

# Share of the job timeout OCR may use; the rest is for downloading, chunking, embedding and
# writing (seconds for a scan's text, against minutes of OCR).
OCR_TIME_SHARE = 0.75
_lock = threading.Lock()
_engines: dict[tuple[ParserProvider, str], OcrEngine] = {}


def get_ocr_engine(settings: Settings) -> OcrEngine | None:
    """The engine for page images, built once per process; None when OCR is off."""
    if settings.parser is ParserProvider.NONE:
        return None
    key = (settings.parser, settings.parser_model)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = _build(settings)
        return engine


def _build(settings: Settings) -> OcrEngine:
    if settings.parser is ParserProvider.GEMINI:
        from common.ingestion.ocr.gemini import GeminiOcr

        return GeminiOcr(settings)
    from common.ingestion.ocr.local import LocalOcr

    return LocalOcr()


def ocr_deadline(settings: Settings) -> float:
    """time.monotonic() by which a job starting now must finish its OCR."""
    return time.monotonic() + OCR_TIME_SHARE * settings.job_timeout_seconds
