"""Generate test Word (.docx) files in memory with python-docx, so no binary fixtures are kept.

Blocks are written in order: a `str` is a paragraph, `("h1", text)` a heading of that level,
`("title", text)` the title, and a list of rows (lists of cell texts) a table.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence

import docx

Block = str | tuple[str, str] | list[list[str]]

__all__ = ["Block", "make_docx", "make_encrypted_docx", "make_zip_without_word_document"]


def make_docx(blocks: Sequence[Block]) -> bytes:
    document = docx.Document()
    for block in blocks:
        if isinstance(block, str):
            document.add_paragraph(block)
        elif isinstance(block, tuple):
            kind, text = block
            document.add_heading(text, level=0 if kind == "title" else int(kind.removeprefix("h")))
        else:
            table = document.add_table(rows=len(block), cols=max(len(row) for row in block))
            for row, cells in zip(table.rows, block, strict=True):
                for cell, value in zip(row.cells, cells, strict=False):
                    cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_encrypted_docx(blocks: Sequence[Block], password: str = "s3cret") -> bytes:
    """What Word writes for "Encrypt with Password": an OLE compound file (MS-OFFCRYPTO)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(make_docx(blocks))).encrypt(password, encrypted)
    return encrypted.getvalue()


def make_zip_without_word_document() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("notes.txt", "a zip, not a Word document")
    return buffer.getvalue()
