"""What a parsed document is, and the one builder every reader writes it with.

The readers live in two modules: plain text and Markdown in :mod:`shared.knowledge.parse`,
HTML, PDF and DOCX in :mod:`shared.knowledge.formats` (apart so that pypdf and python-docx load
only when a file of their kind arrives). Both import what they share from here, and neither
from the other's private names: :class:`Builder`, which nests headings the same way whatever
the format (a heading closes the ones at its level and below), :func:`clean` for the
whitespace of a heading or a table cell, and :func:`broken` for the short message a reader
raises when its library cannot read a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.errors import BadRequest


class BrokenDocument(BadRequest):
    """The file has a supported extension but cannot be read as that type."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(f"{name}: {reason}")


@dataclass(frozen=True, slots=True)
class Section:
    """Text under one heading path; ``page`` counts from 1 and is set for PDFs only."""

    heading: tuple[str, ...]
    page: int | None
    text: str  # paragraphs separated by blank lines


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed file: its title, media type, sections in reading order, and warnings."""

    title: str
    media_type: str
    sections: list[Section]
    warnings: list[str] = field(default_factory=list)


def clean(text: str) -> str:
    """``text`` on one line, its runs of whitespace one space each."""
    return " ".join(text.split())


def broken(name: str, kind: str, exc: BaseException) -> BrokenDocument:
    """The error for a file that ``kind``'s library failed to read.

    Keeps the library's class name (PdfReadError, BadZipFile...) for whoever debugs it, but only
    one short line of its message: its traceback means nothing to the person who uploaded the
    file.
    """
    detail = clean(str(exc))[:160]
    cause = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return BrokenDocument(name, f"cannot be read as {kind} ({cause})")


class Builder:
    """Collects paragraphs under a stack of (level, heading) and closes sections."""

    def __init__(self) -> None:
        self.stack: list[tuple[int, str]] = []
        self.paragraphs: list[str] = []
        self.sections: list[Section] = []
        self.first_heading: str | None = None
        self.warnings: list[str] = []

    def heading(self, level: int, text: str) -> None:
        text = clean(text)
        if not text:
            return
        self.flush()
        self.first_heading = self.first_heading or text
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, text))

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.paragraphs.append(text.strip())

    def flush(self, page: int | None = None) -> None:
        if self.paragraphs:
            heading = tuple(text for _, text in self.stack)
            self.sections.append(Section(heading, page, "\n\n".join(self.paragraphs)))
        self.paragraphs = []

    def finish(self) -> list[Section]:
        self.flush()
        return self.sections
