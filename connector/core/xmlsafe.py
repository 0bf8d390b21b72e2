"""The one parser for untrusted XML: it rejects what it does not accept, it never ignores it.

Every XML document from outside (operator pushes and pulls, Customs responses, signed
messages) goes through :func:`parse_xml` before anything else reads it. The checks run in
this order, all before or during a single lxml parse:

1. **Size.** More than ``ParseLimits.max_bytes`` raises :class:`XmlTooLarge`. Callers also
   call :func:`check_size` on a Content-Length or file size *before* reading the body.
2. **Encoding.** Only UTF-8 is accepted; a UTF-8 byte order mark is fine. A UTF-16/UTF-32
   byte order mark, UTF-16/UTF-32 or EBCDIC without one, an XML declaration that names any
   other encoding, and bytes that are not valid UTF-8 raise :class:`XmlEncodingUnsupported`.
   The parser is forced to UTF-8: a declared encoding is checked, never obeyed.
3. **No DOCTYPE.** A scanner skips the prolog (byte order mark, XML declaration, white space,
   comments, processing instructions) and raises :class:`XmlDoctypeForbidden` if it meets
   ``<!DOCTYPE`` before the root element. No DTD, entity declaration or external subset ever
   reaches libxml2. The same text inside a comment, CDATA or element content is data.
4. **One parse** with a per-thread lxml parser: no entity substitution, no DTD loading, no
   network, libxml2's own size limits on (no ``huge_tree``), comments dropped. A syntax
   error raises :class:`XmlMalformed` with line and column.
5. **Belt and braces.** A DTD found on the parsed document raises
   :class:`XmlDoctypeForbidden`; an entity reference node raises :class:`XmlUnsafe`.
   A processing instruction anywhere (prolog, body or epilog; the XML declaration is not
   one) raises :class:`XmlProcessingInstructionForbidden`: no message kind uses them, and
   an ``<?xml-stylesheet?>`` is refused rather than silently dropped.
6. **Depth.** An element deeper than ``ParseLimits.max_depth`` (the root element is depth 1)
   raises :class:`XmlTooDeep`, and so does libxml2's own limit of 256 levels.

XInclude is never processed. Every error is a :class:`~connector.errors.ConnectorError` with
a one-line message; the lxml exception, if any, is kept as ``__cause__``.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass
from typing import Final

from lxml import etree

from connector.errors import (
    ConfigurationError,
    InvalidMessage,
    XmlDoctypeForbidden,
    XmlEncodingUnsupported,
    XmlMalformed,
    XmlProcessingInstructionForbidden,
    XmlTooDeep,
    XmlTooLarge,
    XmlUnsafe,
)

__all__ = [
    "DEFAULT_LIMITS",
    "LIBXML2_MAX_DEPTH",
    "ParseLimits",
    "check_depth",
    "check_size",
    "parse_xml",
]

LIBXML2_MAX_DEPTH: Final = 256
"""libxml2's own nesting limit without ``huge_tree``; ``max_depth`` cannot go beyond it."""


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Byte and depth limits of one parse; the defaults are the documented policy."""

    max_bytes: int = 32 * 1024 * 1024
    """Largest accepted document, in bytes (32 MiB)."""

    max_depth: int = 32
    """Deepest accepted element nesting; the root element is depth 1."""

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ConfigurationError(
                f"max_bytes must be at least 1, got {self.max_bytes}", key="max_bytes"
            )
        if not 1 <= self.max_depth <= LIBXML2_MAX_DEPTH:
            raise ConfigurationError(
                f"max_depth must be between 1 and {LIBXML2_MAX_DEPTH}, got {self.max_depth}",
                key="max_depth",
            )


DEFAULT_LIMITS: Final = ParseLimits()

_UTF8_BOM: Final = b"\xef\xbb\xbf"
# UTF-32 first: its little-endian mark begins with the UTF-16 one.
_FOREIGN_BOMS: Final = (
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\xfe\xff", "UTF-16"),
    (b"\xff\xfe", "UTF-16"),
)
_EBCDIC_XML_DECL: Final = "<?xm".encode("cp037")
_XML_SPACE: Final = (b" ", b"\t", b"\r", b"\n")
# A declaration this long is hostile; the bound keeps the scan below linear.
_MAX_DECLARATION_BYTES: Final = 1024
_ENCODING_PSEUDO_ATTR: Final = re.compile(
    rb"""[ \t\r\n]encoding[ \t\r\n]*=[ \t\r\n]*(?:"([^"]*)"|'([^']*)')"""
)
# Possessive, so a prolog of millions of comments costs neither backtracking state nor a
# Python-level loop.
_PROLOG_MISC: Final = re.compile(rb"(?:[ \t\r\n]++|<!--.*?-->|<\?.*?\?>)*+", re.DOTALL)
_DOCTYPE: Final = re.compile(rb"<!DOCTYPE", re.IGNORECASE)
# An entity reference node needs a reference to a non-predefined entity in the bytes.
_ENTITY_REFERENCE: Final = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos);|#)")
_AMPERSAND_HOPS: Final = 256

# libxml2 error codes (xmlParserErrors), as lxml reports them in XMLSyntaxError.code.
_ERR_UNKNOWN_ENCODING: Final = 31
_ERR_UNSUPPORTED_ENCODING: Final = 32
_ERR_INVALID_ENCODING: Final = 81
_ERR_RESOURCE_LIMIT: Final = 114
_ENCODING_ERRORS: Final = frozenset(
    {_ERR_UNKNOWN_ENCODING, _ERR_UNSUPPORTED_ENCODING, _ERR_INVALID_ENCODING}
)
_LXML_POSITION_SUFFIX: Final = re.compile(r",\s*line \d+(?:,\s*column \d+)?\s*$")
_UNPRINTABLE: Final = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")
_MAX_REASON_CHARS: Final = 160


def _new_parser() -> etree.XMLParser:
    # collect_ids stays True on purpose: with collect_ids=False lxml sets libxml2's
    # ``loadsubset`` flag, and libxml2 then reads a file:// external DTD subset or parameter
    # entity even with load_dtd=False (measured with lxml 6.1 / libxml2 2.14). The prolog
    # scanner keeps every DOCTYPE out, but the parser must be safe on its own too. The price:
    # a duplicate or non-NCName xml:id is a parse error (XmlMalformed).
    return etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
        recover=False,
        remove_comments=True,
        remove_pis=False,  # kept so that _check_tree can refuse them
        remove_blank_text=False,
        collect_ids=True,
    )


class _ThreadState(threading.local):
    """One lxml parser and one set of compiled depth probes per thread (neither is shared)."""

    def __init__(self) -> None:
        self.parser = _new_parser()
        self.deeper_than: dict[int, etree.XPath] = {}


_state = _ThreadState()


def check_size(size: int, limits: ParseLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`XmlTooLarge` if ``size`` bytes exceed the limit; call it before reading."""
    if size < 0:
        raise ValueError(f"size must not be negative, got {size}")
    if size > limits.max_bytes:
        raise XmlTooLarge(
            f"The message is {size} bytes; the limit is {limits.max_bytes} bytes.",
            size=size,
            limit=limits.max_bytes,
        )


def parse_xml(
    data: bytes, limits: ParseLimits = DEFAULT_LIMITS, *, depth: bool = True
) -> etree._Element:
    """Parse untrusted XML under the policy above and return the root element.

    ``depth=False`` leaves step 6 to the caller, who must call :func:`check_depth` before any
    Python code walks the tree. It is for a caller that first validates against a schema
    bounding the depth within the limit: that C-speed pass makes the probe, the one walk over
    every element, needless for a valid document. libxml2's own 256 levels still hold.

    Raises:
        InvalidMessage: one of its ``Xml*`` subclasses, whenever the document is not accepted.
        TypeError: if ``data`` is not ``bytes`` (a programming error, not a message error).
    """
    if not isinstance(data, bytes):
        raise TypeError(f"parse_xml() takes bytes, not {type(data).__name__}")
    check_size(len(data), limits)
    start, after_declaration = _check_encoding(data)
    _reject_doctype_in_prolog(data, start)
    root = _parse(data, limits)
    _check_tree(root, data, after_declaration, limits if depth else None)
    return root


def _check_encoding(data: bytes) -> tuple[int, int]:
    """Return where the document starts after a UTF-8 byte order mark and where its XML
    declaration, if any, ends (else the start again); reject every other encoding."""
    for bom, name in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise XmlEncodingUnsupported(
                f"The message starts with a {name} byte order mark; only UTF-8 is accepted.",
                encoding=name,
            )
    start = len(_UTF8_BOM) if data.startswith(_UTF8_BOM) else 0
    head = data[start : start + 4]
    if b"\x00" in head:
        raise XmlEncodingUnsupported(
            "The message starts with NUL bytes, as UTF-16 or UTF-32 does; only UTF-8 is accepted.",
            encoding="UTF-16/UTF-32",
        )
    if head == _EBCDIC_XML_DECL:
        raise XmlEncodingUnsupported(
            "The message is EBCDIC-encoded; only UTF-8 is accepted.", encoding="EBCDIC"
        )
    end = _declaration_end(data, start)
    if end is None:
        return start, start
    declared = _declared_encoding(data, start, end)
    if declared is not None and declared.lower() != b"utf-8":
        name = _printable(declared.decode("ascii", "replace"), 40)
        raise XmlEncodingUnsupported(
            f"The message declares encoding {name!r}; only UTF-8 is accepted.", encoding=name
        )
    return start, end + 2


def _declaration_end(data: bytes, start: int) -> int | None:
    """Where the ``?>`` of an XML declaration at ``start`` is; None without a declaration."""
    if not data.startswith(b"<?xml", start) or data[start + 5 : start + 6] not in _XML_SPACE:
        return None
    end = data.find(b"?>", start, start + _MAX_DECLARATION_BYTES)
    if end < 0:
        raise XmlMalformed(
            f"The XML declaration does not end within {_MAX_DECLARATION_BYTES} bytes.",
            line=1,
            column=1,
        )
    return end


def _declared_encoding(data: bytes, start: int, end: int) -> bytes | None:
    """Return the encoding pseudo-attribute of the XML declaration ``data[start:end]``."""
    match = _ENCODING_PSEUDO_ATTR.search(data, start, end)
    if match is None:
        return None
    value: bytes = match.group(1) if match.group(1) is not None else match.group(2)
    return value


def _reject_doctype_in_prolog(data: bytes, start: int) -> None:
    """Raise :class:`XmlDoctypeForbidden` if ``<!DOCTYPE`` comes before the root element."""
    misc = _PROLOG_MISC.match(data, start)
    end = misc.end() if misc is not None else start
    if _DOCTYPE.match(data, end) is not None:
        raise XmlDoctypeForbidden(offset=end)


def _parse(data: bytes, limits: ParseLimits) -> etree._Element:
    """Run the one lxml parse and translate its errors; no policy check of its own."""
    try:
        root: etree._Element = etree.fromstring(data, _state.parser)
    except etree.XMLSyntaxError as exc:
        raise _translate(exc, limits) from exc
    except etree.LxmlError as exc:
        raise XmlMalformed(f"The message could not be parsed: {_reason(str(exc))}.") from exc
    return root


def _translate(exc: etree.XMLSyntaxError, limits: ParseLimits) -> InvalidMessage:
    """Map a libxml2 syntax error to the most specific error of our tree."""
    code = getattr(exc, "code", 0)
    line, column = exc.position
    reason = _reason(exc.msg or "")
    where = f"line {line}, column {column}"
    if reason.startswith("Excessive depth") or (
        code == _ERR_RESOURCE_LIMIT and "depth" in reason.lower()
    ):
        return XmlTooDeep(
            f"The message nests elements deeper than {limits.max_depth} levels ({where}).",
            limit=limits.max_depth,
            line=line,
            column=column,
        )
    if code == _ERR_RESOURCE_LIMIT:
        return XmlTooLarge(
            f"Part of the message exceeds the parser's size limits: {reason} ({where}).",
            line=line,
            column=column,
        )
    if code in _ENCODING_ERRORS:
        return XmlEncodingUnsupported(
            f"The message is not valid UTF-8 ({where}).",
            encoding="UTF-8",
            line=line,
            column=column,
        )
    return XmlMalformed(
        f"The message is not well-formed XML: {reason} ({where}).", line=line, column=column
    )


def _check_tree(
    root: etree._Element, data: bytes, after_declaration: int, limits: ParseLimits | None
) -> None:
    """Re-check the parsed tree: no DTD, entity reference node or processing instruction,
    and (given ``limits``) depth within the limit. ``after_declaration``: where the bytes
    after the XML declaration (if any) begin."""
    docinfo = root.getroottree().docinfo
    if (
        docinfo.internalDTD is not None
        or docinfo.externalDTD is not None
        or getattr(docinfo, "doctype", "")
    ):
        raise XmlDoctypeForbidden()
    # The byte search is a sound pre-filter that keeps a full tree walk off the hot path.
    if _may_hold_entity_reference(data) and next(root.iter(etree.Entity), None) is not None:
        raise XmlUnsafe("The message contains an entity reference; entities are not accepted.")
    # ``<?`` past the XML declaration may be a processing instruction (or text in a comment
    # or CDATA section): only then is the tree searched. A ``?`` past the declaration is
    # looked for first: that search runs at memchr speed, while one for ``<?`` stops at every
    # ``<``, and most documents hold no ``?`` at all.
    if data.find(b"?", after_declaration) >= 0 and data.find(b"<?", after_declaration) >= 0:
        instruction = next(
            itertools.chain(
                root.itersiblings(etree.PI, preceding=True),
                root.iter(etree.PI),
                root.itersiblings(etree.PI),
            ),
            None,
        )
        if instruction is not None:
            target = _printable(str(instruction.target), 40)
            raise XmlProcessingInstructionForbidden(
                f"The message contains a processing instruction ({target!r}); "
                "processing instructions are not accepted.",
                target=target,
            )
    if limits is not None:
        check_depth(root, limits)


def _may_hold_entity_reference(data: bytes) -> bool:
    """Whether ``data`` holds an ``&`` that does not start a predefined entity or a character
    reference. The search hops from ``&`` to ``&`` at memchr speed (most documents hold few);
    past a few hundred, one regular expression scan of the rest takes over."""
    at = data.find(b"&")
    for _ in range(_AMPERSAND_HOPS):
        if at < 0:
            return False
        if _ENTITY_REFERENCE.match(data, at) is not None:
            return True
        at = data.find(b"&", at + 1)
    return at >= 0 and _ENTITY_REFERENCE.search(data, at) is not None


def check_depth(root: etree._Element, limits: ParseLimits = DEFAULT_LIMITS) -> None:
    """Raise :class:`XmlTooDeep` if an element of ``root``'s document is deeper than the limit."""
    if _deeper_than(limits.max_depth)(root) is True:
        raise XmlTooDeep(
            f"The message nests elements deeper than {limits.max_depth} levels.",
            limit=limits.max_depth,
        )


def _deeper_than(max_depth: int) -> etree.XPath:
    """Return this thread's compiled ``boolean(/*/*/…)`` probe for depth ``max_depth + 1``."""
    probes = _state.deeper_than
    probe = probes.get(max_depth)
    if probe is None:
        probe = probes[max_depth] = etree.XPath("boolean(/*" + "/*" * max_depth + ")")
    return probe


def _reason(message: str) -> str:
    """Return libxml2's message as one printable line, without lxml's position suffix."""
    return _printable(_LXML_POSITION_SUFFIX.sub("", message.strip()), _MAX_REASON_CHARS)


def _printable(text: str, limit: int) -> str:
    text = _UNPRINTABLE.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
