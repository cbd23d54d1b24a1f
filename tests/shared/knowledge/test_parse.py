"""Every supported file type, read into titled sections; every way a file can be unreadable.

PDFs and Word documents are written here with fpdf2 and python-docx, so no binary fixtures are
committed and each test shows exactly what its file holds.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile

import docx
import pytest
from fpdf import FPDF

from shared.errors import BadRequest
from shared.knowledge.parse import (
    SUPPORTED,
    BrokenDocument,
    Document,
    Section,
    UnsupportedType,
    media_type_of,
    parse_document,
)


def make_pdf(pages: list[str], *, title: str | None = None, owner: str | None = None,
             user: str | None = None) -> bytes:
    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if owner:
        pdf.set_encryption(owner_password=owner, user_password=user)
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx(*, title: str | None = None, with_headings: bool = True) -> bytes:
    document = docx.Document()
    if title:
        document.core_properties.title = title
    document.add_paragraph("Read this first.")
    if with_headings:
        document.add_heading("Staff Handbook", 0)  # the "Title" style
        document.add_heading("Vacation", 1)
    document.add_paragraph("Everyone gets 25 days a year.")
    table = document.add_table(rows=2, cols=3)
    table.cell(0, 0).text = "Role"
    table.cell(0, 1).merge(table.cell(0, 2)).text = "Days"
    table.cell(1, 0).text = "Staff"
    table.cell(1, 1).text = "25"
    table.cell(1, 2).text = "paid"
    if with_headings:
        document.add_heading("Carry-over", 2)
    document.add_paragraph("Up to 5 days move to next year.")
    if with_headings:
        document.add_heading("Sick leave", 1)
    document.add_paragraph("Tell your manager before 10:00.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def texts(doc: Document) -> list[tuple[tuple[str, ...], int | None, str]]:
    return [(s.heading, s.page, s.text) for s in doc.sections]


# -- plain text ---------------------------------------------------------------------------------

def test_plain_text_is_one_section_titled_by_the_file_name() -> None:
    doc = parse_document("notes/Team Notes.TXT", b"First line.\nSecond line.\n\nMore text.\n")
    assert doc == Document("Team Notes", "text/plain",
                           [Section((), None, "First line.\nSecond line.\n\nMore text.")])


def test_plain_text_with_obvious_titles_is_split_at_them() -> None:
    text = ("Vacation policy\n\nEveryone gets 25 days. Ask a month ahead.\n\n"
            "Sick leave\n========\n\nTell your manager.\n")
    doc = parse_document("policy.txt", text.encode())
    assert doc.title == "Vacation policy"
    assert texts(doc) == [(("Vacation policy",), None, "Everyone gets 25 days. Ask a month ahead."),
                          (("Sick leave",), None, "Tell your manager.")]


def test_a_windows_1252_text_file_is_decoded() -> None:
    text = "Política de vacaciones: “25 días” — ¿dudas? Pregunta a Recursos Humanos."
    doc = parse_document("politica.txt", text.encode("cp1252"))
    assert doc.sections[0].text == text


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16"])
def test_unicode_text_files_are_decoded(encoding: str) -> None:
    doc = parse_document("a.txt", "Año nuevo, café y ñandú.".encode(encoding))
    assert doc.sections[0].text == "Año nuevo, café y ñandú."


def test_binary_data_named_txt_is_broken() -> None:
    with pytest.raises(BrokenDocument, match=r"^blob\.txt: does not look like text"):
        parse_document("blob.txt", bytes(range(256)) * 4)


@pytest.mark.parametrize("name", ["empty.txt", "empty.md", "empty.pdf", "empty.docx", "e.html"])
def test_an_empty_file_gives_no_sections_and_says_so(name: str) -> None:
    for data in (b"", b" \n\n \n"):
        doc = parse_document(name, data)
        assert doc.sections == []
        assert doc.warnings == ["the file is empty"]
        assert doc.title == name.split(".")[0]


# -- Markdown -----------------------------------------------------------------------------------

MARKDOWN = """\
---
title: From front matter
---
Before any heading.

# Runbook #

Restart the *service* first,
then check the logs.

- step one
- step two
  goes on

Deploys
-------

```sh
# not a heading
make deploy
```

### Rollback with [the script](scripts/rollback.sh)
Run it.

***

## Contacts
#hashtag is not a heading.
"""


def test_markdown_headings_nest_and_code_is_not_a_heading() -> None:
    doc = parse_document("RUNBOOK.markdown", MARKDOWN.encode())
    assert doc.title == "Runbook"
    assert doc.media_type == "text/markdown"
    assert texts(doc) == [
        ((), None, "Before any heading."),
        (("Runbook",), None,
         "Restart the *service* first,\nthen check the logs.\n\n- step one\n\n- step two\n"
         "  goes on"),
        (("Runbook", "Deploys"), None, "# not a heading\nmake deploy"),
        (("Runbook", "Deploys", "Rollback with the script"), None, "Run it."),
        (("Runbook", "Contacts"), None, "#hashtag is not a heading."),
    ]


def test_markdown_without_headings_takes_the_front_matter_title() -> None:
    doc = parse_document("a.md", b"---\ntitle: 'On call'\n---\nJust text.\n")
    assert (doc.title, texts(doc)) == ("On call", [((), None, "Just text.")])


# -- HTML ---------------------------------------------------------------------------------------

HTML = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>Intranet - Policies</title>
<style>p { color: red }</style><script>var menu = "<p>Not text</p>";</script>
<body>
<nav><a href="/">Home</a> | <a href="/hr">HR</a></nav>
<h1>Policies &amp; rules</h1>
<p>Everyone
   gets <b>25</b> days.</p>
<ul><li>Ask early</li><li>Use them</li></ul>
<h2>Table</h2>
<table><tr><th>Role</th><th>Days</th></tr><tr><td>Staff</td><td>25</td></tr></table>
<h3>Note</h3><p>Deep.</p>
<h2>Sick leave</h2><p>Call in.</p>
<script>trackVisit();</script><noscript>Enable JavaScript</noscript>
</body></html>"""


def test_html_keeps_headings_paragraphs_items_and_cells_and_drops_the_rest() -> None:
    doc = parse_document("policies.HTM", HTML)
    assert doc.title == "Policies & rules"
    assert texts(doc) == [
        (("Policies & rules",), None, "Everyone gets 25 days.\n\nAsk early\n\nUse them"),
        (("Policies & rules", "Table"), None, "Role | Days\n\nStaff | 25"),
        (("Policies & rules", "Table", "Note"), None, "Deep."),
        (("Policies & rules", "Sick leave"), None, "Call in."),
    ]
    everything = " ".join(s.text for s in doc.sections)
    for dropped in ("Not text", "Home", "trackVisit", "color", "JavaScript", "Intranet"):
        assert dropped not in everything


def test_html_without_headings_is_titled_by_its_title_element() -> None:
    doc = parse_document("p.html", b"<title> Page  title </title><p>Body text.</p>")
    assert (doc.title, texts(doc)) == ("Page title", [((), None, "Body text.")])


# -- PDF ----------------------------------------------------------------------------------------

def test_pdf_gives_one_section_per_page_and_its_metadata_title() -> None:
    data = make_pdf(["Page one says hello.", "", "Página tres: año y ñandú."], title="Guide")
    doc = parse_document("guide.pdf", data)
    assert doc.title == "Guide"
    assert doc.media_type == "application/pdf"
    assert texts(doc) == [((), 1, "Page one says hello."), ((), 3, "Página tres: año y ñandú.")]
    assert doc.warnings == ["no text on page(s) 2"]


def test_a_pdf_without_text_is_empty_with_a_warning() -> None:
    doc = parse_document("scan.pdf", make_pdf(["", ""]))
    assert doc.title == "scan"
    assert doc.sections == []
    assert doc.warnings and "scanned" in doc.warnings[0]


@pytest.mark.parametrize("keep", [0.95, 0.5, 0.1])
def test_a_truncated_pdf_is_broken_with_a_short_clear_message(keep: float) -> None:
    data = make_pdf(["Some text here."])
    with pytest.raises(BrokenDocument) as caught:
        parse_document("cut.pdf", data[: int(len(data) * keep)])
    message = str(caught.value)
    assert message.startswith("cut.pdf: cannot be read as PDF (Pdf")  # pypdf's class name
    assert "\n" not in message and len(message) < 250
    # Raised "from None": the library's traceback is not chained on.
    assert caught.value.__suppress_context__ and caught.value.__cause__ is None
    assert isinstance(caught.value, BadRequest)


def test_something_else_named_pdf_is_broken() -> None:
    with pytest.raises(BrokenDocument, match=r"cannot be read as PDF"):
        parse_document("fake.pdf", b"<html>not a pdf</html>")


def test_a_password_protected_pdf_is_broken() -> None:
    data = make_pdf(["Secret."], owner="owner-pw", user="user-pw")
    with pytest.raises(BrokenDocument, match=r"^locked\.pdf: is encrypted"):
        parse_document("locked.pdf", data)


def test_a_pdf_with_only_an_owner_password_is_read() -> None:
    # Viewers open these without asking for a password, so we do too.
    doc = parse_document("restricted.pdf", make_pdf(["Printable text."], owner="owner-pw"))
    assert texts(doc) == [((), 1, "Printable text.")]


# -- Word ---------------------------------------------------------------------------------------

def test_docx_headings_come_from_paragraph_styles_and_tables_are_read() -> None:
    doc = parse_document("Handbook.docx", make_docx(title="Metadata title"))
    assert doc.title == "Staff Handbook"
    assert doc.media_type == media_type_of("x.docx")
    assert texts(doc) == [
        ((), None, "Read this first."),
        (("Staff Handbook", "Vacation"), None,
         "Everyone gets 25 days a year.\n\nRole | Days\n\nStaff | 25 | paid"),
        (("Staff Handbook", "Vacation", "Carry-over"), None, "Up to 5 days move to next year."),
        (("Staff Handbook", "Sick leave"), None, "Tell your manager before 10:00."),
    ]


def test_docx_without_headings_takes_the_metadata_title() -> None:
    doc = parse_document("h.docx", make_docx(title="Metadata title", with_headings=False))
    assert doc.title == "Metadata title"
    assert [s.heading for s in doc.sections] == [()]


def test_a_truncated_docx_is_broken() -> None:
    data = make_docx()
    with pytest.raises(BrokenDocument, match=r"^cut\.docx: cannot be read as a Word document "
                                             r"\(BadZipFile: "):
        parse_document("cut.docx", data[: len(data) // 2])


def test_a_zip_that_is_not_a_word_document_is_broken() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("hello.txt", "not a document")
    with pytest.raises(BrokenDocument, match=r"cannot be read as a Word document \(\w+"):
        parse_document("other.docx", out.getvalue())


# -- types --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["sheet.xlsx", "archive.tar.gz", "README", "photo.PNG"])
def test_unsupported_types_are_refused_with_the_supported_list(name: str) -> None:
    with pytest.raises(UnsupportedType) as caught:
        parse_document(name, b"data")
    message = str(caught.value)
    assert message.startswith(f"{name}: ")
    assert all(ext in message for ext in SUPPORTED)
    assert caught.value.name == name
    with pytest.raises(UnsupportedType):
        media_type_of(name)


def test_media_types() -> None:
    assert [media_type_of(n) for n in ("a.TXT", "b.md", "c.markdown", "d.pdf", "e.htm")] == [
        "text/plain", "text/markdown", "text/markdown", "application/pdf", "text/html"]
    assert media_type_of("dir.v2/f.docx").endswith("wordprocessingml.document")


# -- layout -------------------------------------------------------------------------------------

def test_the_format_readers_load_without_the_text_readers() -> None:
    """formats and parse share the builder through shared.knowledge.document, so neither imports
    the other's private names (issue 23): formats alone does not load parse."""
    code = ("import sys, shared.knowledge.formats; "
            "print('shared.knowledge.parse' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert loaded == "False"
