"""Readers for HTML, PDF and DOCX files, feeding the same builder as plain text and Markdown.

Apart from :mod:`shared.knowledge.parse` so that pypdf and python-docx load only when a file of
their kind arrives: ``parse_document`` imports this module then. What the two share (the
builder, the error for an unreadable file) comes from :mod:`shared.knowledge.document`, so this
module does not import ``parse``.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser

import docx
from docx.table import Table
from docx.text.paragraph import Paragraph
from pypdf import PdfReader

from shared.knowledge.document import BrokenDocument, Builder, broken, clean

_HTML_SKIP = frozenset({"script", "style", "nav", "head", "noscript", "template", "svg"})
_HTML_BLOCKS = frozenset({
    "p", "div", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "thead", "tbody", "tfoot",
    "caption", "blockquote", "pre", "section", "article", "main", "header", "footer", "aside",
    "figure", "figcaption", "form", "fieldset", "address", "hr", "br", "details", "summary",
    "body", "html",
})
_HTML_HEADINGS = {f"h{n}": n for n in range(1, 7)}


class _HtmlReader(HTMLParser):
    """Headings open sections; block elements end paragraphs; cells of a row are joined with
    " | " so a table row reads as one line."""

    def __init__(self, out: Builder) -> None:
        super().__init__(convert_charrefs=True)
        self.out = out
        self.skipping: list[str] = []
        self.text: list[str] = []
        self.heading: list[str] | None = None
        self.level = 0
        self.title: list[str] | None = None
        self.title_seen = False
        self.title_text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body" and "head" in self.skipping:
            self.skipping.clear()  # </head> is optional: the body closes it
        if tag == "title" and not self.title_seen and set(self.skipping) <= {"head"}:
            self.title, self.title_seen = [], True
        elif tag in _HTML_SKIP:
            self.skipping.append(tag)
        elif self.skipping:
            return
        elif tag in _HTML_HEADINGS:
            self.flush()
            self.heading, self.level = [], _HTML_HEADINGS[tag]
        elif tag in ("td", "th"):
            if "".join(self.text).strip():
                self.text.append(" | ")
        elif tag in _HTML_BLOCKS:
            self.flush()

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title is not None:
            self.title_text = clean("".join(self.title))
            self.title = None
        elif tag in _HTML_SKIP:
            if tag in self.skipping:
                del self.skipping[len(self.skipping) - 1 - self.skipping[::-1].index(tag):]
        elif self.skipping:
            return
        elif tag in _HTML_HEADINGS and self.heading is not None:
            self.out.heading(self.level, "".join(self.heading))
            self.heading = None
        elif tag in _HTML_BLOCKS:
            self.flush()

    def handle_data(self, data: str) -> None:
        if self.title is not None:
            self.title.append(data)
        elif self.skipping:
            return
        elif self.heading is not None:
            self.heading.append(data)
        else:
            self.text.append(data)

    def flush(self) -> None:
        self.out.paragraph(clean("".join(self.text)))
        self.text = []


def read_html(text: str, out: Builder) -> str | None:
    reader = _HtmlReader(out)
    reader.feed(text)
    reader.close()
    reader.flush()
    return reader.title_text or None


def read_pdf(name: str, data: bytes, out: Builder) -> str | None:
    """One section per page. pypdf raises many kinds of error on damaged files (its own, and
    ValueError, KeyError, struct errors from deep inside): all of them mean "cannot be read"."""
    try:
        reader = PdfReader(io.BytesIO(data))
        # A PDF with only an owner password opens in every viewer without asking: try the empty
        # user password before calling it encrypted.
        if reader.is_encrypted and not reader.decrypt(""):
            raise BrokenDocument(name, "is encrypted (password-protected)")
        pages = [page.extract_text() or "" for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except BrokenDocument:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure of the library is a damaged file
        raise broken(name, "PDF", exc) from None
    empty = []
    for number, text in enumerate(pages, start=1):
        if text.strip():
            out.paragraph(text)
            out.flush(page=number)
        else:
            empty.append(number)
    if pages and len(empty) == len(pages):
        out.warnings.append("no text could be extracted: it may be scanned images (no OCR)")
    elif empty:
        out.warnings.append("no text on page(s) " + ", ".join(map(str, empty)))
    return meta_title


def _docx_level(paragraph: Paragraph) -> int | None:
    """0 for the Title style, n for "Heading n", following a custom style's base styles."""
    style = paragraph.style
    for _ in range(5):
        if style is None:
            return None
        name = (style.name or "").lower()
        if name == "title":
            return 0
        if match := re.fullmatch(r"heading ([1-9])", name):
            return int(match.group(1))
        style = style.base_style
    return None


def _docx_rows(table: Table) -> list[str]:
    rows = []
    for row in table.rows:
        cells: list[str] = []
        seen: set[int] = set()
        for cell in row.cells:
            # A merged cell is listed once for every grid column it spans.
            if id(cell._tc) not in seen:
                seen.add(id(cell._tc))
                cells += [clean(cell.text)] if cell.text.strip() else []
        if cells:
            rows.append(" | ".join(cells))
    return rows


def read_docx(name: str, data: bytes, out: Builder) -> str | None:
    try:
        document = docx.Document(io.BytesIO(data))
        blocks = list(document.iter_inner_content())
        for block in blocks:
            if isinstance(block, Paragraph):
                level = _docx_level(block)
                if level is None:
                    out.paragraph(block.text)
                else:
                    out.heading(level, block.text)
            else:
                for row in _docx_rows(block):
                    out.paragraph(row)
        return document.core_properties.title or None
    except Exception as exc:  # noqa: BLE001 - BadZipFile, KeyError, ValueError, lxml errors
        raise broken(name, "a Word document", exc) from None
