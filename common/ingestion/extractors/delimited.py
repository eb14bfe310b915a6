"""CSV and TSV files with the stdlib csv module: one page of Markdown table rows.

The first non-empty record is the header, repeated in every table block so a chunk names its
columns; an export of several tables, one under another, gives each its own (see
`PageBuilder.table`'s `stacked`). Rows are numbered as a spreadsheet opening the file numbers
them (every record counts, blank lines too, the first is row 1), which is also the line number
unless a quoted cell spans lines. A CSV file's delimiter is whichever of comma, semicolon
(European exports), tab and pipe splits the first lines into the most consistent number of
fields (csv.Sniffer guesses wrongly on short files); a TSV file's is the tab. Quoting follows
Excel (double quotes, doubled inside).

Lines are fed to the parser one at a time from the decoded text and rows go straight into the
page, so nothing but the text and the page is held; past `max_rows` reading stops and a notice
counts the lines left. A file whose quoting breaks the parser (a quote never closed swallows
the rest of the file into one field) is read again line by line with quotes kept as text, with
a notice; NUL characters are dropped.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from typing import Literal

from common.ingestion.extractors.base import ExtractOptions, RawDocument, RowUnit
from common.ingestion.extractors.layout import PageBuilder
from common.ingestion.extractors.text import decode_text
from common.platform.errors import PermanentIngestionError
from common.platform.formats import BY_KIND, Kind

_CANDIDATES = (",", ";", "\t", "|")  # in order of preference on a tie
_SAMPLE_CHARS = 64 * 1024
_SAMPLE_LINES = 50
_CHECKPOINT_ROWS = 5000


class _Quoting(csv.Dialect):
    """Excel's quoting with a delimiter set per file; lenient about stray quotes."""

    delimiter = ","
    quotechar = '"'
    doublequote = True
    skipinitialspace = False
    lineterminator = "\n"
    quoting: Literal[0, 1, 2, 3, 4, 5] = csv.QUOTE_MINIMAL
    strict = False


class _Unquoted(_Quoting):
    """The fallback for broken quoting: quote characters are text."""

    quoting = csv.QUOTE_NONE


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """The file as one page of table rows (see the module docstring)."""
    kind = options.kind if options.kind in (Kind.CSV, Kind.TSV) else Kind.CSV
    noun = BY_KIND[kind].noun
    text = decode_text(data, declared_charset=options.charset)
    if "\x00" in text:
        text = text.replace("\x00", "")
    if "\n" not in text[:_SAMPLE_CHARS] and "\r" in text:
        text = text.replace("\r", "\n")  # classic Mac line ends
    delimiter = "\t" if kind is Kind.TSV else sniff_delimiter(text[:_SAMPLE_CHARS])
    notices: list[str] = []
    try:
        builder, left = _read(text, delimiter, _Quoting, options)
    except csv.Error as quoted_error:
        try:
            builder, left = _read(text, delimiter, _Unquoted, options)
        except csv.Error as exc:
            raise PermanentIngestionError(f"the {noun} could not be parsed: {exc}") from exc
        notices.append(
            f"the {noun}'s quoting is broken ({quoted_error}); it was read line by line with "
            "its quotes kept as text"
        )
    if left:
        notices.append(
            f"indexed the first {options.max_rows:,} rows; {left:,} more "
            f"{'lines' if left > 1 else 'line'} of the {noun} {'were' if left > 1 else 'was'} "
            "skipped (AI_INFRA_MAX_SHEET_ROWS)"
        )
    return RawDocument(
        [builder.build()],
        row_unit=RowUnit.ROW,
        empty_message=f"no text in the {noun}",
        notices=notices,
    )


def sniff_delimiter(sample: str) -> str:
    """The candidate that splits the sample's lines into the most consistent field count above
    one (the share of lines with the commonest count, then that count)."""
    lines = sample.splitlines()
    if len(sample) == _SAMPLE_CHARS and len(lines) > 1:
        lines.pop()  # cut short
    lines = [line for line in lines[:_SAMPLE_LINES] if line.strip()]
    best, best_score = ",", (0.0, 0)
    for delimiter in _CANDIDATES:
        counts = Counter(
            len(row) for row in csv.reader(lines, _Quoting, delimiter=delimiter) if row
        )
        if not counts:
            continue
        fields, seen = counts.most_common(1)[0]
        score = (seen / sum(counts.values()), fields)
        if fields > 1 and score > best_score:
            best, best_score = delimiter, score
    return best


def _read(
    text: str, delimiter: str, dialect: type[csv.Dialect], options: ExtractOptions
) -> tuple[PageBuilder, int]:
    """The page, and how many lines were left unread past the row cap."""
    lines = _Lines(text)
    records = csv.reader(lines, dialect, delimiter=delimiter)
    rows = _rows(records, lines, options)
    builder = PageBuilder()
    header = next(rows, None)
    if header is not None:
        builder.table(header[1], rows, options, stacked=True)
    return builder, lines.left


def _rows(
    records: Iterator[list[str]], lines: _Lines, options: ExtractOptions
) -> Iterator[tuple[int, list[str]]]:
    """Non-empty records as (row number, cells without trailing empties), within the cap."""
    budget = options.max_rows
    for number, record in enumerate(records, start=1):
        cells = [cell.strip() for cell in record]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            continue
        if budget <= 0:
            lines.stop()
            return
        budget -= 1
        if number % _CHECKPOINT_ROWS == 0 and options.checkpoint is not None:
            options.checkpoint()
        yield number, cells


class _Lines:
    """The text's lines (ends kept) for the csv reader, remembering where reading stopped."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.position = 0
        self.left = 0  # lines not read, once stopped

    def __iter__(self) -> Iterator[str]:
        text, end = self.text, len(self.text)
        while self.position < end:
            stop = text.find("\n", self.position)
            stop = end if stop < 0 else stop + 1
            line = text[self.position : stop]
            self.position = stop
            yield line

    def stop(self) -> None:
        """Counts the lines left: the record just read and every line after it."""
        text = self.text
        unterminated = self.position < len(text) and not text.endswith("\n")
        self.left = 1 + text.count("\n", self.position) + unterminated
