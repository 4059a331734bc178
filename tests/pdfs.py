"""PDF files written byte by byte for tests: pages of text, an AES-encrypted one, a zip bomb."""

from __future__ import annotations

import os
import zlib


def pdf_file(objects: list[bytes], trailer_extra: bytes = b"") -> bytes:
    """A PDF from numbered object bodies (1-based), with a correct xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        trailer_extra,
        xref,
    )
    return bytes(out)


def _stream(data: bytes, *, flate: bool = False) -> bytes:
    head = b"<< /Length %d%s >>\nstream\n" % (len(data), b" /Filter /FlateDecode" if flate else b"")
    return head + data + b"\nendstream"


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def text_pdf(pages: int, line: str = "Opening hours are nine to five on weekdays.") -> bytes:
    """``pages`` pages, each with a few lines of text (pypdf extracts them)."""
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    kids = []
    for page in range(pages):
        content = (
            b"BT /F1 11 Tf 72 720 Td 14 TL "
            + b" ".join(b"(%s %d.%d) '" % (line.encode(), page, i) for i in range(6))
            + b" ET"
        )
        objects.append(_stream(content))
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents %d 0 R "
            b"/Resources << /Font << /F1 3 0 R >> >> >>" % (len(objects))
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, b" ".join(kids))
    return pdf_file(objects)


def encrypted_pdf() -> bytes:
    """A one-page PDF encrypted with AES-256 (V5/R6): pypdf needs ``cryptography`` even to try it."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
        b"<< /Filter /Standard /V 5 /R 6 /Length 256 /P -4 /O <%s> /U <%s> /OE <%s> /UE <%s> /Perms <%s> "
        b"/CF << /StdCF << /CFM /AESV3 /AuthEvent /DocOpen /Length 32 >> >> /StmF /StdCF /StrF /StdCF >>"
        % tuple(os.urandom(n).hex().encode() for n in (48, 48, 32, 32, 16)),
    ]
    return pdf_file(
        objects,
        b"/Encrypt 4 0 R /ID [<%s> <%s>] " % (os.urandom(16).hex().encode(), os.urandom(16).hex().encode()),
    )


def bomb_pdf(megabytes: int = 70, pages: int = 4) -> bytes:
    """``pages`` pages whose content streams each inflate to ``megabytes`` MB of text operators (each
    just under pypdf's per-stream limit); a few hundred KB on disk."""
    block = b"BT /F1 9 Tf (x) Tj ET " * (1024 * 1024 // 22)
    compressor = zlib.compressobj(1)
    packed = b"".join(compressor.compress(block) for _ in range(megabytes)) + compressor.flush()
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"", _stream(packed, flate=True), FONT]
    kids = []
    for _ in range(pages):
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R "
            b"/Resources << /Font << /F1 4 0 R >> >> >>"
        )
        kids.append(b"%d 0 R" % len(objects))
    objects[1] = b"<< /Type /Pages /Count %d /Kids [%s] >>" % (pages, b" ".join(kids))
    return pdf_file(objects)
