"""Knowledge documents: read text, Markdown, HTML and PDF into plain text, and chunk it with overlap.

Pure functions (no database): ``read_document(path)`` / ``document_text(data, filename,
content_type)`` give ``(title, text, content_type)``; ``chunk_text`` cuts text into pieces of about
``size`` characters on paragraph/sentence boundaries, each repeating the last ``overlap`` characters
of the previous one so a fact split across a boundary is still found whole.
"""

from __future__ import annotations

import io
import re
from html.parser import HTMLParser
from pathlib import Path

from phone_agent.errors import PhoneAgentError

CHUNK_SIZE = 1000
CHUNK_OVERLAP = 200
TEXT_TYPES = {
    ".txt": "text/plain",
    ".text": "text/plain",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".html": "text/html",
    ".htm": "text/html",
    ".pdf": "application/pdf",
}


class DocumentError(PhoneAgentError):
    """A document could not be read (unsupported type, unreadable PDF, empty text)."""

    status_code = 422


def content_type_for(filename: str, content_type: str | None = None) -> str:
    """The content type from an explicit value or the file extension."""
    if content_type and content_type.split(";")[0].strip() in TEXT_TYPES.values():
        return content_type.split(";")[0].strip()
    suffix = Path(filename).suffix.lower()
    if suffix not in TEXT_TYPES:
        raise DocumentError(
            f"{filename}: unsupported document type; use one of {', '.join(sorted(TEXT_TYPES))}."
        )
    return TEXT_TYPES[suffix]


def read_document(path: Path) -> tuple[str, str, str]:
    """``(title, text, content_type)`` of a file on disk."""
    return document_text(path.read_bytes(), path.name)


def document_text(
    data: bytes, filename: str, content_type: str | None = None, *, max_pages: int | None = None
) -> tuple[str, str, str]:
    """``(title, text, content_type)`` of an uploaded or read document (a PDF of at most ``max_pages``)."""
    kind = content_type_for(filename, content_type)
    title = Path(filename).stem.replace("_", " ").replace("-", " ").strip() or filename
    if kind == "application/pdf":
        text = _pdf_text(data, filename, max_pages)
    else:
        raw = data.decode("utf-8", errors="replace")
        if kind == "text/html":
            text, html_title = _html_text(raw)
            title = html_title or title
        elif kind == "text/markdown":
            text = raw
            heading = re.search(r"^#\s+(.+)$", raw, re.MULTILINE)
            title = heading.group(1).strip() if heading else title
        else:
            text = raw
    text = normalise_text(text)
    if not text:
        raise DocumentError(f"{filename}: no text found in the document.")
    return title[:300], text, kind


def _pdf_text(data: bytes, filename: str, max_pages: int | None = None) -> str:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):  # an empty user password opens many
            raise FileNotDecryptedError("a password is needed")
        if max_pages is not None and len(reader.pages) > max_pages:
            raise DocumentError(
                f"{filename}: {len(reader.pages)} pages; at most {max_pages} are read. Split the document."
            )
        return "\n\n".join(page.extract_text() or "" for page in reader.pages)
    except (FileNotDecryptedError, DependencyError, NotImplementedError) as exc:
        raise DocumentError(
            f"{filename}: the PDF is encrypted; save it without a password and upload it again."
        ) from exc
    except LimitReachedError as exc:
        raise DocumentError(f"{filename}: the PDF expands beyond what is read safely ({exc}).") from exc
    except (PdfReadError, ValueError, KeyError, RecursionError) as exc:
        raise DocumentError(f"{filename}: not a readable PDF ({exc}).") from exc


class _HTMLText(HTMLParser):
    """Collects visible text; block elements become paragraph breaks."""

    BLOCKS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section", "article"}
    HIDDEN = {"script", "style", "noscript", "template", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self._hidden = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in self.HIDDEN:
            self._hidden += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in self.HIDDEN:
            self._hidden = max(0, self._hidden - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.parts.append(data)


def _html_text(raw: str) -> tuple[str, str]:
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    return "".join(parser.parts), " ".join(parser.title.split())


def normalise_text(text: str) -> str:
    """Collapse runs of spaces inside lines and of blank lines between paragraphs."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def chunk_text(text: str, *, size: int = CHUNK_SIZE, overlap: int = CHUNK_OVERLAP) -> list[str]:
    """Pieces of about ``size`` characters, cut at paragraph/sentence/word ends, overlapping."""
    if size <= overlap:
        raise ValueError("chunk size must be larger than the overlap")
    text = text.strip()
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            end = _cut_point(text, start, end)
        chunks.append(text[start:end].strip())
        if end >= len(text):
            break
        next_start = max(end - overlap, start + 1)
        # begin the overlap at a word start, not mid-word
        space = text.find(" ", next_start, end)
        start = space + 1 if space != -1 else next_start
    return [c for c in chunks if c]


def _cut_point(text: str, start: int, end: int) -> int:
    """The best place to end a chunk in text[start:end]: paragraph, sentence, then word end."""
    floor = start + (end - start) // 2
    for pattern in ("\n\n", ". ", "? ", "! ", "\n", " "):
        cut = text.rfind(pattern, floor, end)
        if cut != -1:
            return cut + len(pattern.rstrip(" ")) if pattern.strip() else cut + len(pattern)
    return end
