"""Recognising the pages of one document within the job's time budget.

OCR costs seconds a page, so a long scan could outlast the function timeout: killed, redelivered
and killed again until the job gives up. Instead the pages are timed as they are read, and once
the pages left cannot finish by `ExtractOptions.deadline` (a share of
`AI_INFRA_JOB_TIMEOUT_SECONDS`, the rest kept for chunking, embedding and writing) the document
fails at once with a message that says so. `ExtractOptions.checkpoint` runs between pages (a
lost lease stops the work). Pages are rendered by the caller one at a time, when asked for, so
only the pages in flight are in memory: one for the local engine, `engine.concurrency` for a
remote one, whose pages wait on the network rather than the CPU.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from common.ingestion.extractors.base import ExtractOptions, OcrEngine
from common.platform.errors import PermanentIngestionError

# Pages timed before the rate is trusted to predict the rest (the first one loads the models).
_PAGES_BEFORE_PREDICTING = 2


def recognize_pages(
    images: Iterable[Callable[[], object | None]],
    count: int,
    engine: OcrEngine,
    options: ExtractOptions,
) -> Iterator[str | None]:
    """The text of each page image, in order; `images` yields a loader per page, which returns
    None for a page that cannot be rendered (its text is then None too)."""
    budget = _Budget(count, options.deadline)
    workers = max(1, engine.concurrency)
    if workers == 1:
        for load in images:
            _checkpoint(options)
            budget.check()
            image = load()
            yield None if image is None else engine.recognize(image)
            budget.done()
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ocr") as pool:
        pending: deque[Future[str | None]] = deque()
        try:
            for load in images:
                _checkpoint(options)
                budget.check()
                pending.append(_submit(pool, engine, load()))
                if len(pending) >= workers:
                    yield pending.popleft().result()
                    budget.done()
            while pending:
                _checkpoint(options)
                yield pending.popleft().result()
                budget.done()
        finally:
            for future in pending:
                future.cancel()


def _submit(
    pool: ThreadPoolExecutor, engine: OcrEngine, image: object | None
) -> Future[str | None]:
    if image is None:
        skipped: Future[str | None] = Future()
        skipped.set_result(None)
        return skipped
    return pool.submit(engine.recognize, image)


def _checkpoint(options: ExtractOptions) -> None:
    if options.checkpoint is not None:
        options.checkpoint()


class _Budget:
    """Fails the document as soon as its pages cannot be read before the deadline."""

    def __init__(self, count: int, deadline: float | None) -> None:
        self._count = count
        self._deadline = deadline
        self._started = time.monotonic()
        self._finished = 0

    def done(self) -> None:
        self._finished += 1

    def check(self) -> None:
        if self._deadline is None:
            return
        now = time.monotonic()
        left = self._count - self._finished
        if self._finished >= _PAGES_BEFORE_PREDICTING:
            per_page = (now - self._started) / self._finished
            if now + per_page * left > self._deadline:
                raise self._too_slow(per_page)
        elif now > self._deadline:
            raise self._too_slow(None)

    def _too_slow(self, per_page: float | None) -> PermanentIngestionError:
        budget = max(0.0, (self._deadline or 0.0) - self._started)
        pace = (
            f"about {per_page * self._count:,.0f} s at {per_page:.1f} s a page"
            if per_page is not None
            else "more than the time left"
        )
        return PermanentIngestionError(
            f"OCR of {self._count} pages exceeds the job's time budget ({pace}; "
            f"{budget:,.0f} s are left for OCR within AI_INFRA_JOB_TIMEOUT_SECONDS): split "
            "the document, or raise the timeout (infra: chunk_embed_timeout_seconds)"
        )
