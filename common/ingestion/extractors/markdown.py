"""Markdown to plain text: keep what a reader reads, drop the syntax that only adds token noise.

Kept: heading text (as its own paragraph, "#" marks dropped), paragraph and list structure, link
and image text, inline and fenced code content, table cell text. Dropped: YAML front matter, link
targets and reference definitions, emphasis markers, list bullets, block-quote markers, fence and
rule lines, table separator rows, HTML comments and tags. A line-based pass, not a full CommonMark
parser: good enough for retrieval, and with no dependency.
"""

from __future__ import annotations

import re

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RawPage
from common.ingestion.extractors.headings import HEADING_MARK, clean_heading, strip_marks
from common.ingestion.extractors.text import decode_text

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})")
_ATX_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}(?:[ \t]+|$)(.*?)(?:[ \t]+#+)?[ \t]*$")
_SETEXT_UNDERLINE = re.compile(r"^[ \t]{0,3}(?:=+|-+)[ \t]*$")
_RULE = re.compile(r"^[ \t]{0,3}(?:(?:\*[ \t]*){3,}|(?:-[ \t]*){3,}|(?:_[ \t]*){3,})$")
_BLOCKQUOTE = re.compile(r"^[ \t]{0,3}(?:>[ \t]?)+")
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+(?:\[[ xX]\][ \t]+)?")
_TABLE_SEPARATOR = re.compile(
    r"^[ \t]*\|?[ \t]*:?-{2,}:?[ \t]*(?:\|[ \t]*:?-{2,}:?[ \t]*)*\|?[ \t]*$"
)
_REFERENCE_DEFINITION = re.compile(r"^[ \t]{0,3}\[[^\]]+\]:[ \t]*\S+.*$")

_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_REFERENCE_LINK = re.compile(r"\[([^\]]+)\]\[[^\]]*\]")
_AUTOLINK = re.compile(r"<((?:https?|mailto|ftp):[^>\s]+)>")
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>]*)?/?>")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_STRONG = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_EMPHASIS_STAR = re.compile(r"\*(?=\S)(.+?)(?<=\S)\*")
_EMPHASIS_UNDERSCORE = re.compile(r"(?<!\w)_(?=\S)(.+?)(?<=\S)_(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|>~])")


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """A Markdown file: its text and headings, one page."""
    text, levels = markdown_outline(decode_text(data, declared_charset=options.charset))
    return RawDocument([RawPage(text, headings=levels)])


def markdown_to_text(source: str) -> str:
    """Plain text of a Markdown document (normalisation of whitespace happens afterwards)."""
    text, _ = markdown_outline(source)
    return text.replace(HEADING_MARK, "")


def markdown_outline(source: str) -> tuple[str, list[tuple[int, str]]]:
    """The plain text with HEADING_MARK before each non-empty heading, and their (level, text)
    in order (see `common.ingestion.extractors.headings`)."""
    headings: list[tuple[int, str]] = []
    source = _FRONT_MATTER.sub("", strip_marks(source).replace("\r\n", "\n"))
    source = _HTML_COMMENT.sub("", source)
    out: list[str] = []
    in_fence: str | None = None
    for line in source.split("\n"):
        fence = _FENCE.match(line)
        if in_fence is not None:
            if fence and fence.group(1)[0] == in_fence[0] and len(fence.group(1)) >= len(in_fence):
                in_fence = None
                out.append("")
            else:
                out.append(line)  # code is content: keep it verbatim
            continue
        if fence:
            in_fence = fence.group(1)
            out.append("")
            continue
        converted = _block_line(line, out, headings)
        if converted is not None:
            out.append(converted)
    return "\n".join(out), headings


def _block_line(line: str, previous: list[str], headings: list[tuple[int, str]]) -> str | None:
    """The text of one line outside code fences; None drops the line without a break."""
    heading = _ATX_HEADING.match(line)
    if heading:
        title = _inline(heading.group(1))
        if not clean_heading(title):
            return f"\n{title}\n"
        headings.append((len(line.lstrip().split(maxsplit=1)[0].rstrip()), clean_heading(title)))
        return f"\n{HEADING_MARK}{title}\n"
    if _SETEXT_UNDERLINE.match(line) and previous and previous[-1].strip():
        headings.append((1 if line.strip().startswith("=") else 2, clean_heading(previous[-1])))
        previous[-1] = f"\n{HEADING_MARK}{previous[-1]}"
        return "\n"  # the line above was a heading: make it its own paragraph
    if _TABLE_SEPARATOR.match(line) or _REFERENCE_DEFINITION.match(line):
        return None
    if _RULE.match(line):
        return ""
    line = _BLOCKQUOTE.sub("", line)
    line = _BULLET.sub(r"\1", line)
    if line.lstrip().startswith("|") or line.count("|") >= 2:
        line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|"))
    return _inline(line)


def _inline(text: str) -> str:
    text = _IMAGE.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _REFERENCE_LINK.sub(r"\1", text)
    text = _AUTOLINK.sub(r"\1", text)
    text = _HTML_TAG.sub("", text)
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), text)
    text = _STRONG.sub(r"\2", text)
    text = _EMPHASIS_STAR.sub(r"\1", text)
    text = _EMPHASIS_UNDERSCORE.sub(r"\1", text)
    text = _STRIKE.sub(r"\1", text)
    return _ESCAPE.sub(r"\1", text)
