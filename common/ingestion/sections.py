"""Each chunk's context: the document title and the section heading path where the chunk starts.

The context ("booktabs > 3 Use of the new commands") is embedded with the chunk and indexed with
it for full text, so a chunk that never names its subject still matches questions about it;
the chunk's content and offsets stay exactly the extracted text (citations quote those). The
context has a token budget reserved in the embedding input: when it is over, the outer headings
go first (the title and the innermost heading are kept).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import PurePosixPath

from common.ingestion.chunking import Chunk, TokenCounter
from common.ingestion.extractors.headings import Heading

SEPARATOR = " > "
CONTEXT_TOKENS = 32  # reserved in the embedding model's input for the context line


def document_title(object_name: str) -> str:
    """The title a context starts with: the file name without its extension."""
    path = PurePosixPath(object_name)
    return path.stem or path.name


def heading_paths(headings: Sequence[Heading], chunks: Sequence[Chunk]) -> list[list[str]]:
    """For each chunk (in text order, as chunking returns them), the titles of the headings in
    force where its own text starts, after any heading lines it opens with (outermost first)."""
    ordered = sorted(headings, key=lambda heading: heading.char_start)
    stack: list[Heading] = []
    paths: list[list[str]] = []
    next_heading = 0
    for chunk in chunks:
        position = chunk.char_start
        while next_heading < len(ordered) and ordered[next_heading].char_start <= position:
            heading = ordered[next_heading]
            while stack and stack[-1].level >= heading.level:
                stack.pop()
            stack.append(heading)
            next_heading += 1
            position = max(position, _after_line(chunk, heading.char_start))
        paths.append([heading.title for heading in stack])
    return paths


def _after_line(chunk: Chunk, offset: int) -> int:
    """Where the chunk's text continues after the (heading) line starting at `offset`, so a
    chunk opening with several headings gets the innermost one."""
    local = offset - chunk.char_start
    if local < 0:
        return chunk.char_start
    end = chunk.content.find("\n", local)
    if end == -1:
        return chunk.char_end
    rest = chunk.content[end:]
    return chunk.char_start + end + len(rest) - len(rest.lstrip())


def with_context(
    chunks: Sequence[Chunk],
    *,
    title: str,
    headings: Sequence[Heading],
    tokenizer: TokenCounter,
    max_tokens: int = CONTEXT_TOKENS,
) -> list[Chunk]:
    """The chunks with their context set (see the module docstring)."""
    fitted: dict[tuple[str, ...], str] = {}
    result = []
    for chunk, path in zip(chunks, heading_paths(headings, chunks), strict=True):
        key = tuple(path)
        if key not in fitted:
            fitted[key] = _fit([title, *path], tokenizer, max_tokens)
        result.append(dataclasses.replace(chunk, context=fitted[key]))
    return result


def _fit(parts: list[str], tokenizer: TokenCounter, max_tokens: int) -> str:
    base = tokenizer.count_tokens("")
    while True:
        context = SEPARATOR.join(part for part in parts if part)
        if len(parts) <= 2 or tokenizer.count_tokens(context) - base <= max_tokens:
            break
        del parts[1]  # drop the outermost heading, keep the title and the innermost
    while context and tokenizer.count_tokens(context) - base > max_tokens:
        context = context[: len(context) * 3 // 4].rstrip()
    return context


def embedding_input(chunk: Chunk) -> str:
    """What the embedding model reads for a chunk: its context line, then its content."""
    return f"{chunk.context}\n\n{chunk.content}" if chunk.context else chunk.content
