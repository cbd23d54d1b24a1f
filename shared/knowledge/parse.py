"""Reading documents into sections of text grouped by the headings they sit under.

One entry, :func:`parse_document`, picks a reader by the file name's extension (plain text and
Markdown here; HTML, PDF and DOCX in :mod:`shared.knowledge.formats`, which this module imports
only when such a file arrives). Every reader feeds the same
:class:`~shared.knowledge.document.Builder`, so headings nest the same way whatever the format.
A file that cannot be read raises :class:`BrokenDocument` with a short message; the parsing
library's own exception never leaves the readers, since its traceback means nothing to the
person who uploaded the file. :class:`Document`, :class:`Section` and :class:`BrokenDocument`
are defined in :mod:`shared.knowledge.document` and exported from here too.
"""

from __future__ import annotations

import re
import unicodedata

from shared.errors import BadRequest
from shared.knowledge.document import BrokenDocument, Builder, Document, Section, clean

__all__ = ["SUPPORTED", "BrokenDocument", "Document", "Section", "UnsupportedType",
           "media_type_of", "parse_document"]

SUPPORTED = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx")
_MEDIA_TYPES = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".pdf": "application/pdf",
    ".html": "text/html",
    ".htm": "text/html",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class UnsupportedType(BadRequest):
    """The file's extension names a type Charla cannot read."""

    def __init__(self, name: str) -> None:
        self.name = name
        ext = _extension(name)
        what = f"'{ext}' files are not supported" if ext else "a name without an extension"
        super().__init__(f"{name}: {what} (supported: {', '.join(SUPPORTED)})")


def media_type_of(name: str) -> str:
    """The media type for a file name, or :class:`UnsupportedType`."""
    try:
        return _MEDIA_TYPES[_extension(name)]
    except KeyError:
        raise UnsupportedType(name) from None


def parse_document(name: str, data: bytes) -> Document:
    """Parse ``data``, read as the type that ``name``'s extension names.

    Raises :class:`UnsupportedType` for an extension not in :data:`SUPPORTED` and
    :class:`BrokenDocument` for a file that cannot be read. An empty file, or a PDF with no
    text layer, is not an error: it gives a document without sections and with a warning.
    """
    media_type = media_type_of(name)
    ext, stem = _extension(name), _stem(name)
    if not data.strip():
        return Document(stem, media_type, [], ["the file is empty"])
    builder = Builder()
    meta_title: str | None = None
    if ext in (".pdf", ".docx", ".html", ".htm"):
        from shared.knowledge import formats  # their libraries load only when such a file comes

        if ext == ".pdf":
            meta_title = formats.read_pdf(name, data, builder)
        elif ext == ".docx":
            meta_title = formats.read_docx(name, data, builder)
        else:
            meta_title = formats.read_html(_decode(name, data), builder)
    elif ext in (".md", ".markdown"):
        meta_title = _read_markdown(_decode(name, data), builder)
    else:
        _read_text(_decode(name, data), builder)
    sections = builder.finish()
    if not sections and not builder.warnings:
        builder.warnings.append("no text found in it")
    title = builder.first_heading or clean(meta_title or "") or stem
    return Document(title, media_type, sections, builder.warnings)


def _basename(name: str) -> str:
    return re.split(r"[/\\]", name)[-1]


def _extension(name: str) -> str:
    base = _basename(name)
    return "." + base.rsplit(".", 1)[1].lower() if "." in base.lstrip(".") else ""


def _stem(name: str) -> str:
    base = _basename(name)
    return base[: len(base) - len(_extension(name))] or base


def _decode(name: str, data: bytes) -> str:
    """Text files come in whatever encoding the writer's editor used: UTF-8 (with or without a
    BOM), Notepad's UTF-16, or Windows-1252 and Latin-1 from older tools."""
    candidates = ["utf-16"] if data[:2] in (b"\xff\xfe", b"\xfe\xff") else []
    for encoding in [*candidates, "utf-8-sig", "cp1252", "latin-1"]:
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    controls = sum(1 for c in text if unicodedata.category(c) == "Cc" and c not in "\t\n\r\f\v")
    if "\x00" in text or controls > len(text) // 100:
        raise BrokenDocument(name, "does not look like text (binary data?)")
    return text


def _looks_like_title(block: str) -> str | None:
    lines = block.splitlines()
    if len(lines) == 2 and re.fullmatch(r"\s*[=\-~*]{3,}\s*", lines[1]):
        return lines[0].strip()  # an underlined title
    line = block.strip()
    if len(lines) == 1 and len(line) <= 80 and len(line.split()) <= 10 and (
            line[0].isupper() or line[0].isdigit()) and line[-1] not in ".,;:!?…-*":
        return line
    return None


def _read_text(text: str, out: Builder) -> None:
    """Plain text is one section, unless it plainly has titles: two or more single short lines
    standing alone between blank lines, each followed by ordinary text."""
    blocks = [b for b in re.split(r"\n[ \t]*\n", text.replace("\r\n", "\n")) if b.strip()]
    titles = {i: title for i, b in enumerate(blocks[:-1])
              if (title := _looks_like_title(b)) and not _looks_like_title(blocks[i + 1])}
    for i, block in enumerate(blocks):
        if len(titles) >= 2 and i in titles:
            out.heading(1, titles[i])
        else:
            out.paragraph(block)


_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")
_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_BREAK = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_BLOCK_START = re.compile(r"\s*(?:[-*+]|\d{1,9}[.)])\s|\s*\|")  # list item or table row
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")


def _inline(text: str) -> str:
    return _LINK.sub(r"\1", text).replace("`", "").replace("**", "")


def _read_markdown(text: str, out: Builder) -> str | None:
    """ATX (#) and setext (underlined) headings; fenced code kept as text but never read as
    headings; list items and table rows become paragraphs of their own. YAML front matter is
    dropped, its ``title`` kept as the metadata title."""
    lines = text.replace("\r\n", "\n").split("\n")
    meta_title = None
    if lines and lines[0].strip() == "---" and "---" in (s.strip() for s in lines[1:]):
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
        for line in lines[1:end]:
            if line.startswith("title:"):
                meta_title = line[6:].strip().strip("'\"")
        lines = lines[end + 1:]
    para: list[str] = []
    fence = ""

    def flush() -> None:
        out.paragraph("\n".join(para))
        para.clear()

    for line in lines:
        if fence:
            if line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                fence = ""
                flush()
            else:
                para.append(line)
        elif match := _FENCE.match(line):
            flush()
            fence = match.group(1)
        elif match := _ATX.fullmatch(line):
            flush()
            out.heading(len(match.group(1)), _inline(match.group(2) or ""))
        elif (match := _SETEXT.fullmatch(line)) and para and not any(
                _BLOCK_START.match(p) for p in para):
            level = 1 if match.group(1)[0] == "=" else 2
            heading = " ".join(para)
            para.clear()
            out.heading(level, _inline(heading))
        elif not line.strip() or _BREAK.fullmatch(line):
            flush()
        else:
            if _BLOCK_START.match(line):
                flush()
            para.append(line)
    flush()
    return meta_title
