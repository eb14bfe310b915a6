"""EPUB 2 and 3 books: a page per chapter, in reading order, each read by the HTML extractor.

META-INF/container.xml names the package document (OPF), whose spine orders the chapter files.
Each one with text becomes a page (cited as "chapter 3": the third with text; cover images and
blank pages are skipped), and the navigation document (EPUB 3) is left out, as it only repeats
the chapter titles. A chapter opens with its title as a level-1 heading, from the book's table of
contents (nav, else the EPUB 2 NCX), else the chapter's own first heading; its own headings move
one level down, so a chunk's heading path reads "chapter > section". When the chapter's first
heading already is its title, that heading is the level-1 one.

DRM: a book whose chapters are listed in META-INF/encryption.xml is refused. Font obfuscation
(IDPF or Adobe) also lives there and is no obstacle: only fonts are scrambled.
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from typing import Any
from urllib.parse import unquote, urldefrag

from lxml import etree

from common.ingestion.extractors.base import ExtractOptions, PageUnit, RawDocument, RawPage
from common.ingestion.extractors.headings import HEADING_MARK, clean_heading, strip_marks
from common.ingestion.extractors.html import declared_charset, html_outline
from common.ingestion.extractors.normalize import has_text
from common.ingestion.extractors.packages import PACKAGE_ERRORS, corrupt, open_package
from common.ingestion.extractors.text import decode_text
from common.platform.errors import PermanentIngestionError

LABEL = "EPUB book"
_CONTAINER = "META-INF/container.xml"
_ENCRYPTION = "META-INF/encryption.xml"
# Font obfuscation algorithms (EPUB OCF and Adobe): scrambled fonts, readable text.
_OBFUSCATION = frozenset({"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"})
_CHAPTER_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/html"})
_OPS = "{http://www.idpf.org/2007/ops}type"
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._:-]+)""")
_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, huge_tree=False, remove_comments=True
)


def extract(data: bytes, options: ExtractOptions) -> RawDocument:
    """The book's chapters as pages (see the module docstring)."""
    with open_package(data, label=LABEL, max_unpacked_bytes=options.max_unpacked_bytes) as book:
        try:
            pages = _chapters(book, options)
        except etree.XMLSyntaxError as exc:
            raise corrupt(LABEL, exc, "its package files are not well-formed XML") from exc
        except PACKAGE_ERRORS as exc:
            raise corrupt(LABEL, exc) from exc
    return RawDocument(
        pages, unit=PageUnit.CHAPTER, paged=True, empty_message=f"no text in the {LABEL}"
    )


def _chapters(book: zipfile.ZipFile, options: ExtractOptions) -> list[RawPage]:
    names = set(book.namelist())
    if _CONTAINER not in names:
        raise PermanentIngestionError(
            f"the file is a zip package without an {LABEL} (no {_CONTAINER})"
        )
    opf = _package_path(_xml(book.read(_CONTAINER)))
    if opf is None or opf not in names:
        raise PermanentIngestionError(
            f"the {LABEL} is corrupt or truncated: its package document (OPF) is missing"
        )
    items, spine, ncx = _manifest(_xml(book.read(opf)), posixpath.dirname(opf))
    chapters = [path for path, media_type, properties in spine
                if media_type in _CHAPTER_TYPES and "nav" not in properties.split()]  # fmt: skip
    if _ENCRYPTION in names and _encrypted(_xml(book.read(_ENCRYPTION))) & set(chapters):
        raise PermanentIngestionError(
            f"the {LABEL} is protected by DRM (its chapters are encrypted); upload a DRM-free copy"
        )
    titles = _contents(book, names, items, ncx)
    pages = []
    for path in chapters:
        if path not in names:
            continue  # listed but absent: the rest of the book still reads
        page = _chapter(book.read(path), titles.get(path))
        if page is not None:
            pages.append(page)
        if options.checkpoint is not None:
            options.checkpoint()
    return pages


def _chapter(data: bytes, title: str | None) -> RawPage | None:
    """One chapter as a page, its title first as a level-1 heading; None when it has no text."""
    charset = _xml_charset(data) or declared_charset(data)
    try:
        source = decode_text(data, declared_charset=charset)
    except PermanentIngestionError as exc:
        raise corrupt(LABEL, exc, "a chapter is not text") from exc
    text, levels = html_outline(source)
    if not has_text(text.replace(HEADING_MARK, "")):
        return None
    title = title or (levels[0][1] if levels else None)
    headings = [(level + 1, heading) for level, heading in levels]
    if levels and title is not None and levels[0][1].casefold() == title.casefold():
        headings[0] = (1, levels[0][1])  # the chapter's own first heading is its title
    elif title is not None:
        text = f"{HEADING_MARK}{title}\n\n{text}"
        headings.insert(0, (1, title))
    return RawPage(text, headings=headings)


def _xml(data: bytes) -> Any:
    return etree.fromstring(data, _PARSER)


def _local(element: Any) -> str:
    return str(etree.QName(element).localname) if isinstance(element.tag, str) else ""


def _package_path(container: Any) -> str | None:
    """The OPF's path in the zip: the first rootfile of the OPF media type (else the first)."""
    rootfiles = [element for element in container.iter() if _local(element) == "rootfile"]
    rootfiles.sort(key=lambda e: e.get("media-type") != "application/oebps-package+xml")
    path = rootfiles[0].get("full-path") if rootfiles else None
    return unquote(path).lstrip("/") if path else None


def _manifest(
    opf: Any, base: str
) -> tuple[dict[str, tuple[str, str, str]], list[tuple[str, str, str]], str | None]:
    """Manifest items by id as (path, media type, properties), the spine in reading order, and
    the NCX's path (EPUB 2's table of contents)."""
    items: dict[str, tuple[str, str, str]] = {}
    spine: list[tuple[str, str, str]] = []
    toc_id = None
    for element in opf.iter():
        local = _local(element)
        href = element.get("href")
        if local == "item" and element.get("id") and href:
            media_type = (element.get("media-type") or "").strip().lower()
            items[element.get("id")] = (_resolve(base, href), media_type,
                                        element.get("properties") or "")  # fmt: skip
        elif local == "spine":
            toc_id = element.get("toc")
    for element in opf.iter():
        if _local(element) == "itemref" and element.get("idref") in items:
            spine.append(items[element.get("idref")])
    ncx = items[toc_id][0] if toc_id in items else None
    return items, spine, ncx


def _resolve(base: str, href: str) -> str:
    """A reference relative to `base` as a zip entry name."""
    return posixpath.normpath(posixpath.join(base, unquote(urldefrag(href).url))).lstrip("/")


def _encrypted(encryption: Any) -> set[str]:
    """The entries encrypted with anything but font obfuscation."""
    paths = set()
    for data in encryption.iter():
        if _local(data) != "EncryptedData":
            continue
        methods = [e.get("Algorithm") for e in data.iter() if _local(e) == "EncryptionMethod"]
        if methods and all(method in _OBFUSCATION for method in methods):
            continue
        for reference in data.iter():
            if _local(reference) == "CipherReference" and reference.get("URI"):
                paths.add(_resolve("", reference.get("URI")))
    return paths


def _contents(
    book: zipfile.ZipFile,
    names: set[str],
    items: dict[str, tuple[str, str, str]],
    ncx: str | None,
) -> dict[str, str]:
    """Chapter titles by file from the table of contents (nav, else NCX); the first entry
    pointing into a file names it. An unreadable table of contents is no loss: {}."""
    nav = next((path for path, _, props in items.values() if "nav" in props.split()), None)
    for path, read in ((nav, _nav_titles), (ncx, _ncx_titles)):
        if path is None or path not in names:
            continue
        try:
            titles = read(_xml(book.read(path)), posixpath.dirname(path))
        except etree.XMLSyntaxError:
            continue
        if titles:
            return titles
    return {}


def _nav_titles(nav: Any, base: str) -> dict[str, str]:
    navs = [element for element in nav.iter() if _local(element) == "nav"]
    toc = next((n for n in navs if "toc" in (n.get(_OPS) or "").split()), None)
    if toc is None and navs:
        toc = navs[0]
    if toc is None:
        return {}
    entries = [
        (a.get("href"), "".join(a.itertext()))
        for a in toc.iter()
        if _local(a) == "a" and a.get("href")
    ]
    return _titles(entries, base)


def _ncx_titles(ncx: Any, base: str) -> dict[str, str]:
    entries = []
    for point in ncx.iter():
        if _local(point) != "navPoint":
            continue
        label = next((e for e in point if _local(e) == "navLabel"), None)
        content = next((e for e in point if _local(e) == "content"), None)
        if label is not None and content is not None and content.get("src"):
            entries.append((content.get("src"), "".join(label.itertext())))
    return _titles(entries, base)


def _titles(entries: list[tuple[str, str]], base: str) -> dict[str, str]:
    titles: dict[str, str] = {}
    for href, text in entries:
        title = clean_heading(strip_marks(text))
        path = _resolve(base, href)
        if title and path not in titles:
            titles[path] = title
    return titles


def _xml_charset(data: bytes) -> str | None:
    match = _XML_ENCODING.match(data[:512])
    return match.group(1).decode("ascii") if match else None
