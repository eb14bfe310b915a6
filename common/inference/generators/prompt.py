"""The prompt every model-backed generator sends: numbered sources, then the question.

The citation rules sit in the user message as well as the default system prompt, so a caller's
own system prompt (per request or `AI_INFRA_SYSTEM_PROMPT`) cannot switch citations off.
"""

from __future__ import annotations

from common.inference.generators.base import GenerationRequest, Source
from common.platform.config import Settings

NOT_FOUND_ANSWER = "The provided sources do not contain an answer to this question."

DEFAULT_SYSTEM_PROMPT = (
    "You answer questions using only the numbered sources you are given. "
    "Cite the source of every statement with its number in square brackets, such as [1] or "
    "[2][3], right after the statement. Never cite a number that is not in the sources and never "
    "use outside knowledge. If the sources do not contain the answer, say so plainly instead of "
    "guessing. Be concise."
)

INSTRUCTIONS = (
    "Answer the question using only the sources above. Cite every statement with the number of "
    "its source in square brackets, for example [1] or [1][3]. If the sources do not contain the "
    f'answer, reply exactly: "{NOT_FOUND_ANSWER}"'
)


def system_prompt(request: GenerationRequest, settings: Settings) -> str:
    """The request's own system prompt, else the configured one, else the default."""
    return request.system_prompt or settings.system_prompt or DEFAULT_SYSTEM_PROMPT


def pages_label(page_start: int | None, page_end: int | None, location: str | None = None) -> str:
    """Where a source is: its location ("slide 7") when known, else its page numbers."""
    if location:
        return f" ({location})"
    if page_start is None:
        return ""
    if page_end is None or page_end == page_start:
        return f" (page {page_start})"
    return f" (pages {page_start}-{page_end})"


def format_source(source: Source) -> str:
    title = source.title.strip() or "Untitled"
    pages = pages_label(source.page_start, source.page_end, source.location)
    return f"[{source.number}] {title}{pages}\n{source.content.strip()}"


def user_prompt(request: GenerationRequest) -> str:
    """Sources numbered as they will be cited, the question, and the citation rules."""
    if request.sources:
        sources = "\n\n".join(format_source(source) for source in request.sources)
    else:
        sources = "(no sources were found)"
    return f"Sources:\n\n{sources}\n\nQuestion: {request.question.strip()}\n\n{INSTRUCTIONS}"
