"""Writes the two binary documents of the evaluation corpus: one .docx and one .pdf.

The text lives here, in plain Python data, so that a reviewer can read and diff it, and so
that ``test_evalset.py`` can check its answers without a parser for either format. The output
files are committed next to the other documents; run this script again after editing the text:

    .venv/bin/python tests/knowledge/eval/make_binary.py
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

DOCS = Path(__file__).resolve().parent / "docs"

# A section is a heading and its paragraphs.
Section = tuple[str, tuple[str, ...]]

DOCX_NAME = "manual-de-bienvenida.docx"
DOCX_TITLE = "Manual de bienvenida: oficina de Madrid"
DOCX_SECTIONS: tuple[Section, ...] = (
    ("Tu primer día", (
        "Te esperamos a las 9:30 en la recepción de la calle de Alcalá 214, cuarta planta. "
        "Lucía Ortega te dará la tarjeta de acceso y te acompañará a tu equipo.",
        "A las 10:30 alguien de IT te entrega el portátil ya preparado y tu YubiKey, y te "
        "ayuda a entrar por primera vez. Ese día la comida con tu equipo la paga la empresa.",
    )),
    ("Tu primera semana", (
        "Todas las incorporaciones del mes se reúnen con el consejero delegado, Andrés "
        "Villalba, en una sesión sobre la historia y la cultura de Acme que se celebra el "
        "primer miércoles de cada mes a las 12:00.",
        "La formación de seguridad es obligatoria y hay que completarla en los primeros diez "
        "días; sin ella, IT no concede acceso a los sistemas de clientes.",
    )),
    ("Periodo de prueba", (
        "El periodo de prueba es de seis meses para puestos técnicos titulados y de dos meses "
        "para el resto, como permite el Estatuto de los Trabajadores. Al terminar el tercer "
        "mes tendrás una conversación de seguimiento con tu responsable.",
    )),
    ("Horario y registro de jornada", (
        "La jornada es de 40 horas semanales con horario flexible; la franja común en la que "
        "todo el mundo está disponible va de 10:00 a 16:00.",
        "En julio y agosto los viernes se trabaja en jornada intensiva hasta las 15:00.",
        "La ley obliga a registrar la jornada: ficha en Portal Gente al empezar y al terminar "
        "cada día, también cuando teletrabajas.",
    )),
    ("A quién preguntar", (
        "Tu persona de referencia en Personas durante los primeros meses es Nuria Campos. "
        "Para cualquier otra duda, pregunta en el canal #bienvenida de Slack, donde siempre "
        "responde alguien en menos de una hora en horario de oficina.",
    )),
)

PDF_NAME = "information-security-policy.pdf"
PDF_TITLE = "Information Security Policy"
# One tuple of sections per page, so that page numbers in citations can be checked.
PDF_PAGES: tuple[tuple[Section, ...], ...] = (
    (
        ("1. Scope", (
            "This policy applies to everyone who works for Acme Iberica, in Madrid and in "
            "Boston, including contractors. Owner: Alvaro Pena, Chief Information Security "
            "Officer. Version 4, approved in March 2025.",
        )),
        ("2. Data classification", (
            "Every document and dataset falls into one of four classes: Public, Internal, "
            "Confidential or Restricted. Restricted covers customer personal data, payment "
            "data and credentials; Confidential covers contracts, salaries and unreleased "
            "product plans.",
            "Restricted data is never pasted into Slack, email or support tickets. It is kept "
            "only in the Restricted area of the document vault, which is encrypted and logs "
            "every read.",
        )),
    ),
    (
        ("3. Email and phishing", (
            "If a message looks suspicious, use the Report Phish button in Gmail instead of "
            "forwarding it. The security team answers every report within four business hours.",
            "Never approve a sign-in prompt on your phone that you did not start yourself; "
            "report it at once, since it usually means your password is known.",
        )),
        ("4. Removable media and personal phones", (
            "USB storage devices are blocked on all company laptops. Files are shared through "
            "Google Drive links with access limited to named people.",
            "Slack and email on a personal phone are allowed only with the Acme MDM profile "
            "installed. The profile lets IT wipe work data from the phone, never personal data.",
        )),
    ),
    (
        ("5. AI tools", (
            "Confidential and Restricted data must not be typed into public AI chatbots. Use "
            "Charla, the internal assistant that runs on servers Acme controls, for work "
            "questions about internal documents.",
        )),
        ("6. Training and access reviews", (
            "Everyone completes the annual security awareness course by October 31. Managers "
            "review who on their team has access to which systems every quarter, in the first "
            "two weeks of January, April, July and October.",
        )),
        ("7. Reporting an incident", (
            "Report a suspected security incident to seguridad@acme-iberica.com, or in "
            "#security-urgent on Slack when it cannot wait. Reporting a mistake quickly is "
            "never punished.",
        )),
    ),
)


def section_text(sections: tuple[Section, ...]) -> str:
    """The plain text of some sections: each heading, then its paragraphs, one per line."""
    lines: list[str] = []
    for heading, paragraphs in sections:
        lines.append(heading)
        lines.extend(paragraphs)
    return "\n".join(lines)


def docx_text() -> str:
    """The whole text of the .docx, title included."""
    return DOCX_TITLE + "\n" + section_text(DOCX_SECTIONS)


def pdf_text() -> str:
    """The whole text of the .pdf, title included, pages separated by blank lines."""
    return PDF_TITLE + "\n" + "\n\n".join(section_text(page) for page in PDF_PAGES)


def write_docx(path: Path) -> None:
    """Write the welcome manual with real heading styles, as a word processor would."""
    from docx import Document  # imported here: reading the text above needs no extras

    document = Document()
    document.core_properties.title = DOCX_TITLE
    document.core_properties.author = "Acme Ibérica, Personas"
    # A fixed date keeps the file's metadata the same from one run to the next.
    document.core_properties.created = dt.datetime(2025, 5, 2, 9, 0)
    document.core_properties.modified = dt.datetime(2025, 5, 2, 9, 0)
    document.add_heading(DOCX_TITLE, level=0)
    for heading, paragraphs in DOCX_SECTIONS:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    document.save(str(path))


def write_pdf(path: Path) -> None:
    """Write the security policy on three pages with the built-in Helvetica font."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_creation_date(dt.datetime(2025, 3, 14, 9, 0, tzinfo=dt.UTC))
    pdf.set_title(PDF_TITLE)
    pdf.set_author("Acme Iberica, Security")
    pdf.set_auto_page_break(auto=True, margin=20)
    for number, page in enumerate(PDF_PAGES):
        pdf.add_page()
        if number == 0:
            pdf.set_font("Helvetica", style="B", size=18)
            pdf.multi_cell(0, 10, PDF_TITLE, new_x="LMARGIN", new_y="NEXT")
            pdf.ln(4)
        for heading, paragraphs in page:
            pdf.set_font("Helvetica", style="B", size=13)
            pdf.multi_cell(0, 8, heading, new_x="LMARGIN", new_y="NEXT")
            pdf.set_font("Helvetica", size=11)
            for paragraph in paragraphs:
                # Left-aligned on purpose: justified text adds word spacing that some text
                # extractors read back as missing spaces.
                pdf.multi_cell(0, 6, paragraph, new_x="LMARGIN", new_y="NEXT")
                pdf.ln(2)
            pdf.ln(3)
    pdf.output(str(path))


def main() -> None:
    """Write both files into ``docs/`` and say where."""
    for name, write in ((DOCX_NAME, write_docx), (PDF_NAME, write_pdf)):
        path = DOCS / name
        write(path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
