"""OCR on this machine: PP-OCR models (detection, line orientation, recognition) through
onnxruntime, as the rapidocr wheel ships them, so it runs offline and inside chunk_embed.

One pass per page: the boxes the detector finds, the orientation the line classifier gives each
of them, the recognised text. A page scanned sideways or upside down is told by those same
classifier votes (its lines stand vertical, or most read "180"): it is turned upright and read
once more, so only rotated pages pay a second pass. onnxruntime gets as many threads as this
process may use (its CPU affinity and cgroup quota, not the host's cores a container may see),
and pages are read one at a time, each with all of them.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.ingestion.ocr.layout import Box, page_text
from common.ingestion.ocr.typography import latin_typography

if TYPE_CHECKING:
    from PIL.Image import Image
    from rapidocr import RapidOCR

logger = logging.getLogger(__name__)

# Recognised text below this confidence is dropped (noise, smudges, half-legible stamps).
MIN_CONFIDENCE = 0.5
# A page is turned when this share of its text (by length) votes for one other orientation.
TURN_SHARE = 0.6
# A crop this much taller than wide is a vertical line (the detector rotates it to read it).
_VERTICAL = 1.5
_TINY = 8  # pixels: nothing legible fits in a smaller image
# Longest side a page is read at (bigger ones are scaled down): 2000 px is 170 dpi on A4.
MAX_SIDE = 2000
# Longest side text is detected at. Measured on 8 pages of Debian manuals scanned at 200 dpi
# (words of the text layer found again): 2000 px 95.6%, 1800 96.1%, 1600 96.5%, 1440 95.0%,
# 1280 90.9%; 1600 also needs 14% less CPU and 220 MB less memory than 2000.
DETECT_SIDE = 1600
_CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = _CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


class LocalOcr:
    """`OcrEngine` over rapidocr; the models load on the first page (cold starts stay cheap)."""

    name = "local"
    concurrency = 1  # onnxruntime already spreads one page over every CPU

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine: RapidOCR | None = None

    def recognize(self, image: object) -> str:
        from PIL import Image

        if not isinstance(image, Image.Image):
            raise TypeError(f"expected a PIL image, got {type(image).__name__}")
        if min(image.size) < _TINY:
            return ""
        page = image if image.mode in ("L", "RGB") else image.convert("RGB")
        with self._lock:
            reading = self._read(page)
            if reading.turn:
                rotations = {
                    90: Image.Transpose.ROTATE_90,
                    180: Image.Transpose.ROTATE_180,
                    270: Image.Transpose.ROTATE_270,
                }
                turned = self._read(page.transpose(rotations[reading.turn]))
                # The votes of a sparse page can mislead: keep whichever reading is surer.
                logger.info(
                    "page read turned",
                    extra={"ocr_turn_degrees": reading.turn, "kept": turned.sure >= reading.sure},
                )
                if turned.sure >= reading.sure:
                    reading = turned
        return page_text(reading.boxes)

    def _read(self, image: Image) -> _Reading:
        """One pass: the confident boxes and the turn the classifier votes for. Lines are read
        as detected: the votes turn whole pages, never single lines (the classifier misreads a
        fifth of upright lines as "180")."""
        from rapidocr.main import RapidOCRError

        engine = self._rapidocr()
        original = engine.load_img(image)
        prepared, record = engine.preprocess_img(original)
        try:
            crops, det = engine.detect_and_crop(prepared, record)
            _, cls = engine.cls_and_rotate(crops)
            rec = engine.recognize_txt(crops)
        except RapidOCRError:  # nothing detected, or nothing legible in what was
            return _Reading([], 0, 0.0)
        turn = _upright_turn(det.boxes, cls.cls_res or [])
        result = engine.build_final_output(original, det, cls, rec, crops, record)
        boxes = _boxes(result)
        sure = sum(len(text) * float(score) for text, score in _scored(result))
        return _Reading(boxes, turn, sure)

    def _rapidocr(self) -> RapidOCR:
        if self._engine is None:
            from rapidocr import RapidOCR

            threads = available_cpus()
            self._engine = RapidOCR(
                params={
                    "Global.log_level": "warning",
                    "Global.text_score": MIN_CONFIDENCE,
                    "Global.max_side_len": MAX_SIDE,
                    # Detection shrinks big pages to DETECT_SIDE and never enlarges small
                    # images (the default blows them up to 736 px a side: 4-6x the CPU for
                    # the same text); lines are still read from the MAX_SIDE image.
                    "Det.limit_type": "max",
                    "Det.limit_side_len": DETECT_SIDE,
                    "EngineConfig.onnxruntime.intra_op_num_threads": threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
            )
            _limit_opencv_threads(threads)
        return self._engine


@dataclass(frozen=True)
class _Reading:
    boxes: list[Box]
    # Degrees counter-clockwise that would set the page upright (0: it is).
    turn: int
    # Characters read, weighted by confidence: which of two readings to believe.
    sure: float


def _scored(result: Any) -> list[tuple[str, float]]:
    if getattr(result, "txts", None) is None or getattr(result, "scores", None) is None:
        return []
    return list(zip(result.txts, result.scores, strict=True))


def _boxes(result: Any) -> list[Box]:
    if getattr(result, "boxes", None) is None or getattr(result, "txts", None) is None:
        return []
    boxes = []
    for corners, text in zip(result.boxes, result.txts, strict=True):
        xs = [float(point[0]) for point in corners]
        ys = [float(point[1]) for point in corners]
        boxes.append(Box(min(xs), min(ys), max(xs), max(ys), latin_typography(str(text))))
    return boxes


def _upright_turn(corners: Any, orientations: Sequence[tuple[str, float]]) -> int:
    """Votes of the line classifier, weighted by line length and confidence: horizontal lines
    read "180" mean the page is upside down; vertical lines (turned a quarter counter-clockwise
    before classification) read "0" mean it lies turned clockwise, "180" counter-clockwise."""
    votes = {0: 0.0, 90: 0.0, 180: 0.0, 270: 0.0}
    for box, (label, score) in zip(corners, orientations, strict=False):
        width = math.dist(box[0], box[1])
        height = math.dist(box[0], box[3])
        flipped = "180" in label
        if width > 0 and height / width >= _VERTICAL:
            votes[270 if flipped else 90] += height * score
        else:
            votes[180 if flipped else 0] += width * score
    total = sum(votes.values())
    turn = max(votes, key=lambda key: votes[key])
    if turn == 0 or total <= 0 or votes[turn] < TURN_SHARE * total:
        return 0
    return turn


def _limit_opencv_threads(threads: int) -> None:
    import cv2

    cv2.setNumThreads(threads)
