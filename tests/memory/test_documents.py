"""Reading knowledge documents (text, Markdown, HTML, PDF) and chunking them with overlap."""

from __future__ import annotations

import pytest

from phone_agent.memory.documents import DocumentError, chunk_text, document_text
from phone_agent.memory.search import fuse_rankings, query_terms
from phone_agent.storage.phones import normalise_phone


def make_pdf(lines: list[str]) -> bytes:
    """A minimal one-page PDF whose text layer holds ``lines`` (Helvetica, one line each)."""
    ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
    for line in lines:
        ops.append(f"({line}) Tj T*")
    ops.append("ET")
    stream = "\n".join(ops).encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def test_pdf_text_is_extracted_with_pypdf() -> None:
    title, text, kind = document_text(
        make_pdf(["Claims must be filed", "within 30 days."]), "claims_policy.pdf"
    )
    assert (title, kind) == ("claims policy", "application/pdf")
    assert "Claims must be filed" in text and "within 30 days." in text


def test_html_keeps_visible_text_and_title() -> None:
    html = b"""<html><head><title>Our  Hours</title><script>var x = 'hidden';</script></head>
    <body><h1>Hours</h1><p>Mon&ndash;Fri 9&nbsp;to 5.</p><style>p{}</style>
    <ul><li>Sat 10-12</li></ul></body></html>"""
    title, text, kind = document_text(html, "hours.html")
    assert (title, kind) == ("Our Hours", "text/html")
    assert text == "Hours\n\nMon\u2013Fri 9\u00a0to 5.\n\nSat 10-12".replace("\u00a0", " ")
    assert "hidden" not in text


def test_markdown_title_from_heading_and_plain_text() -> None:
    assert document_text(b"# Pricing\n\nBasic plan: $10.", "p.md")[:1] == ("Pricing",)
    assert document_text(b"  plain   words \n\n\n\nnext", "notes.txt") == (
        "notes",
        "plain words\n\nnext",
        "text/plain",
    )


def test_unsupported_empty_and_broken_documents_are_refused() -> None:
    with pytest.raises(DocumentError, match="unsupported document type"):
        document_text(b"MZ", "setup.exe")
    with pytest.raises(DocumentError, match="no text"):
        document_text(b"   \n ", "empty.txt")
    with pytest.raises(DocumentError, match="not a readable PDF"):
        document_text(b"%PDF-1.4 garbage", "bad.pdf")


def test_chunks_overlap_and_cover_the_whole_text() -> None:
    sentences = [f"Sentence number {i} talks about topic {i % 7}." for i in range(120)]
    text = " ".join(sentences)
    chunks = chunk_text(text, size=400, overlap=100)
    assert len(chunks) > 5 and all(len(c) <= 400 for c in chunks)
    for sentence in sentences:  # nothing lost: every sentence is whole in some chunk
        assert any(sentence in chunk for chunk in chunks)
    for first, second in zip(chunks, chunks[1:], strict=False):  # consecutive chunks share text
        assert first[-40:].split()[-1] in second
    assert chunk_text("short text") == ["short text"]
    with pytest.raises(ValueError):
        chunk_text(text, size=100, overlap=100)


def test_query_terms_fusion_and_phone_normalisation() -> None:
    assert query_terms("Hi, what's my HOME insurance? I'm Maria") == ["home", "insurance", "maria"]
    assert query_terms('car AND "boat" NEAR(z)') == ["car", "boat", "near"]  # FTS syntax can't get through
    assert fuse_rankings([[1, 2, 3], [3, 1]]) == [
        (1, 1 / 61 + 1 / 62),
        (3, 1 / 63 + 1 / 61),
        (2, 1 / 62),
    ]
    assert normalise_phone(" +1 (555) 123-0001 ") == "+15551230001"
