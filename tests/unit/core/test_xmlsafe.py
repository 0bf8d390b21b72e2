"""Tests for the one hardened parser of untrusted XML (connector.core.xmlsafe)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from connector.core import xmlsafe
from connector.core.xmlsafe import (
    DEFAULT_LIMITS,
    LIBXML2_MAX_DEPTH,
    ParseLimits,
    check_size,
    parse_xml,
)
from connector.errors import (
    ConfigurationError,
    ConnectorError,
    XmlDoctypeForbidden,
    XmlEncodingUnsupported,
    XmlMalformed,
    XmlProcessingInstructionForbidden,
    XmlTooDeep,
    XmlTooLarge,
    XmlUnsafe,
)

ATTACKS = Path(__file__).resolve().parents[2] / "data" / "attacks"
NS = "urn:ead-connector:item-batch:1"
PASSWD_MARKER = "root:"

#: Every file in tests/data/attacks/ and what parse_xml must do with it (None: accept it).
EXPECTED: dict[str, type[ConnectorError] | None] = {
    "billion_laughs.xml": XmlDoctypeForbidden,
    "comment_double_hyphen_doctype.xml": XmlMalformed,
    "deep_nesting.xml": XmlTooDeep,
    "deep_nesting_40.xml": XmlTooDeep,
    "doctype_after_prolog.xml": XmlDoctypeForbidden,
    "doctype_only.xml": XmlDoctypeForbidden,
    "ebcdic_declared.xml": XmlEncodingUnsupported,
    "external_dtd.xml": XmlDoctypeForbidden,
    "external_entity_file.xml": XmlDoctypeForbidden,
    "external_entity_http.xml": XmlDoctypeForbidden,
    "invalid_utf8.xml": XmlEncodingUnsupported,
    "latin1_declared.xml": XmlEncodingUnsupported,
    "not_wellformed.xml": XmlMalformed,
    "parameter_entities.xml": XmlDoctypeForbidden,
    "quadratic_blowup.xml": XmlDoctypeForbidden,
    "undeclared_entity.xml": XmlMalformed,
    "utf16_declared.xml": XmlEncodingUnsupported,
    "utf16_no_bom.xml": XmlEncodingUnsupported,
    "utf32_bom.xml": XmlEncodingUnsupported,
    "utf7_declared.xml": XmlEncodingUnsupported,
    "xinclude.xml": None,
}
EXTERNAL_ENTITY_FILES = [
    "external_dtd.xml",
    "external_entity_file.xml",
    "external_entity_http.xml",
    "parameter_entities.xml",
]


def batch(batch_id: str = "B1", *, items: int = 1) -> bytes:
    """Return a small well-formed ItemBatch document."""
    item = (
        "<Item><ItemId>RR123456785DE</ItemId><Category>GIFT</Category>"
        "<Sender><Name>A</Name><Address><City>Berlin</City><Country>DE</Country></Address>"
        "</Sender></Item>"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<ItemBatch xmlns="{NS}"><Header>'
        f"<BatchId>{batch_id}</BatchId><OperatorId>DE-POST</OperatorId>"
        f"<CreatedAt>2026-11-26T10:00:00Z</CreatedAt></Header>"
        f"<Items>{item * items}</Items></ItemBatch>"
    ).encode()


def nested(depth: int) -> bytes:
    """Return a document whose deepest element is at ``depth`` (the root is depth 1)."""
    return b"<a>" * depth + b"</a>" * depth


def batch_id(root: etree._Element) -> str | None:
    """Return the BatchId text of a parsed ItemBatch."""
    return root.findtext(f"{{{NS}}}Header/{{{NS}}}BatchId")


def attack_files() -> list[Path]:
    """Return the attack corpus, sorted by name."""
    return sorted(ATTACKS.glob("*.xml"))


# --- the attack corpus ---------------------------------------------------------------------


def test_corpus_and_expected_table_name_the_same_files() -> None:
    """The EXPECTED table and the attack directory list exactly the same files."""
    assert {p.name for p in attack_files()} == set(EXPECTED)


@pytest.mark.parametrize("path", attack_files(), ids=lambda p: p.name)
def test_attack_file_gets_its_expected_outcome(path: Path) -> None:
    """Each attack file is rejected with its expected error class and code, or accepted."""
    assert path.name in EXPECTED, f"add {path.name} to EXPECTED in this test module"
    assert path.stat().st_size < 20 * 1024
    expected = EXPECTED[path.name]
    data = path.read_bytes()
    if expected is None:
        assert isinstance(parse_xml(data), etree._Element)
        return
    with pytest.raises(ConnectorError) as info:
        parse_xml(data)
    error = info.value
    assert type(error) is expected
    assert error.code == expected.code
    if expected is XmlDoctypeForbidden:
        # The prolog scanner (which records the offset) caught it before libxml2 saw it.
        assert "offset" in error.context
    assert "\n" not in error.message
    assert PASSWD_MARKER not in str(error.as_dict())


def test_xinclude_is_parsed_but_never_processed() -> None:
    """An xi:include of /etc/passwd stays an inert element and the file is not read."""
    root = parse_xml((ATTACKS / "xinclude.xml").read_bytes())
    assert root.find(".//{http://www.w3.org/2001/XInclude}include") is not None
    assert PASSWD_MARKER not in etree.tostring(root, encoding="unicode")


@pytest.mark.parametrize("name", EXTERNAL_ENTITY_FILES)
def test_external_targets_never_reach_the_result(name: str) -> None:
    """External entity and DTD files raise our error only, and no target content leaks."""
    with pytest.raises(ConnectorError) as info:
        parse_xml((ATTACKS / name).read_bytes())
    assert isinstance(info.value, XmlDoctypeForbidden)
    assert PASSWD_MARKER not in str(info.value.as_dict())


# --- accepted documents -------------------------------------------------------------------


def test_well_formed_batch_parses_and_returns_the_root() -> None:
    """A tiny valid ItemBatch parses and the root element comes back."""
    root = parse_xml(batch("B42"))
    assert root.tag == f"{{{NS}}}ItemBatch"
    assert batch_id(root) == "B42"


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("<!-- <!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]> -->", ""),
        ("<![CDATA[<!DOCTYPE x>]]>", "<!DOCTYPE x>"),
        ("&lt;!DOCTYPE x&gt;", "<!DOCTYPE x>"),
    ],
    ids=["comment", "cdata", "escaped-text"],
)
def test_doctype_text_inside_the_body_is_accepted(body: str, text: str) -> None:
    """'<!DOCTYPE' inside a body comment, CDATA or text is data, not a declaration."""
    doc = f'<ItemBatch xmlns="{NS}"><Header><BatchId>{body}</BatchId></Header></ItemBatch>'
    root = parse_xml(doc.encode())
    assert batch_id(root) == text


@pytest.mark.parametrize(
    "prolog",
    [
        b"<!-- no <!DOCTYPE here -->",
        b'<?xml version="1.0"?>\n<!-- <!DOCTYPE x> --><!-- <?tool <!DOCTYPE?> -->\n',
        b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\r\n<!---->\t',
    ],
    ids=["comment", "declaration-comments", "bom-declaration-empty-comment"],
)
def test_prolog_comment_mentioning_doctype_is_accepted(prolog: bytes) -> None:
    """A prolog comment that mentions DOCTYPE (or a PI) does not fool the scanner."""
    doc = prolog + f'<ItemBatch xmlns="{NS}"/>'.encode()
    assert parse_xml(doc).tag == f"{{{NS}}}ItemBatch"


def test_a_prolog_pi_hiding_a_doctype_is_refused_as_doctype() -> None:
    """The prolog scanner steps over a PI and still finds the DOCTYPE behind it."""
    doc = b'<?xml version="1.0"?><?tool <!DOCTYPE?><!DOCTYPE r [<!ENTITY e "x">]><r/>'
    with pytest.raises(XmlDoctypeForbidden):
        parse_xml(doc)


def test_comments_are_stripped() -> None:
    """Comments in the prolog, body and epilog are gone from the returned tree."""
    doc = b'<?xml version="1.0"?><!--p--><r><!--b--><x>1<!--t-->2</x></r><!--e-->'
    root = parse_xml(doc)
    assert root.xpath("//comment()") == []
    assert root.getprevious() is None
    assert root.getnext() is None
    assert root.findtext("x") == "12"


@pytest.mark.parametrize(
    ("doc", "target"),
    [
        (
            b'<?xml version="1.0"?><?xml-stylesheet href="file:///etc/passwd"?><r/>',
            "xml-stylesheet",
        ),
        (b"<?pi first?><r/>", "pi"),
        (b'\xef\xbb\xbf<?xml version="1.0"?>\n<r><x><?tool b?></x></r>', "tool"),
        (b"<r/><?pi after?>", "pi"),
    ],
    ids=["prolog-stylesheet", "prolog-without-declaration", "body", "epilog"],
)
def test_processing_instructions_are_refused(doc: bytes, target: str) -> None:
    """A PI anywhere is refused with its own code; the XML declaration is not a PI."""
    with pytest.raises(XmlProcessingInstructionForbidden) as caught:
        parse_xml(doc)
    assert caught.value.code == "xml_processing_instruction_forbidden"
    assert caught.value.context["target"] == target


def test_pi_like_text_in_comments_and_cdata_is_data() -> None:
    doc = b'<?xml version="1.0"?><r><!-- <?x y?> --><x><![CDATA[<?y z?>]]></x></r>'
    assert parse_xml(doc).findtext("x") == "<?y z?>"


# --- encoding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prefix",
    [
        b"",
        b"\xef\xbb\xbf",
        b'<?xml version="1.0"?>',
        b'<?xml version="1.0" encoding="UTF-8"?>',
        b"<?xml version='1.0' encoding='utf-8' standalone='yes'?>",
        b'\xef\xbb\xbf<?xml version="1.0" encoding="Utf-8"?>',
    ],
)
def test_utf8_forms_are_accepted(prefix: bytes) -> None:
    """UTF-8 with or without BOM and declaration, in any letter case, is accepted."""
    root = parse_xml(prefix + "<r>Café ✓</r>".encode())
    assert root.text == "Café ✓"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b'<?xml version="1.0" encoding="latin1"?><r/>', "latin1"),
        (b"<?xml version='1.0' encoding='US-ASCII'?><r/>", "US-ASCII"),
        (b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-16"?><r/>', "UTF-16"),
        (b'<?xml version="1.0" encoding="utf8"?><r/>', "utf8"),
        (b'<?xml version="1.0" encoding="\x1b[31mX\nY"?><r/>', "[31mX Y"),
    ],
    ids=["latin1", "ascii", "bom-then-utf16", "utf8-without-hyphen", "control-chars"],
)
def test_declared_encoding_other_than_utf8_is_named_in_the_error(
    data: bytes, encoding: str
) -> None:
    """A declared non-UTF-8 encoding is rejected and named, as one printable line."""
    with pytest.raises(XmlEncodingUnsupported) as info:
        parse_xml(data)
    assert info.value.context["encoding"] == encoding
    assert "\n" not in info.value.message


def test_encoding_is_checked_before_the_doctype() -> None:
    """A Latin-1 document with a DOCTYPE fails on its encoding first."""
    with pytest.raises(XmlEncodingUnsupported):
        parse_xml(b'<?xml version="1.0" encoding="ISO-8859-1"?><!DOCTYPE r><r/>')


def test_unterminated_xml_declaration_is_malformed() -> None:
    """An XML declaration that does not end within 1 KiB is rejected as malformed."""
    with pytest.raises(XmlMalformed):
        parse_xml(b'<?xml version="1.0"' + b" " * 2000 + b"?><r/>")


# --- size -----------------------------------------------------------------------------------


def test_exactly_max_bytes_passes_and_one_more_raises() -> None:
    """A document of exactly max_bytes parses; one byte more is XmlTooLarge."""
    doc = batch()
    assert parse_xml(doc, ParseLimits(max_bytes=len(doc))).tag == f"{{{NS}}}ItemBatch"
    with pytest.raises(XmlTooLarge) as info:
        parse_xml(doc, ParseLimits(max_bytes=len(doc) - 1))
    assert info.value.context == {"size": len(doc), "limit": len(doc) - 1}
    assert info.value.http_status == 413


def test_default_limit_is_32_mib_exactly() -> None:
    """With default limits, a 32 MiB document parses and one byte more is rejected."""
    head, tail = f'<ItemBatch xmlns="{NS}">'.encode(), b"</ItemBatch>"
    # Text nodes stay under libxml2's 10 MB limit, so the size check is what decides.
    chunk = b"<p>" + b"x" * (8 * 1024 * 1024) + b"</p>"
    body = chunk * 3
    rest = DEFAULT_LIMITS.max_bytes - len(head) - len(body) - len(tail) - len(b"<p></p>")
    doc = head + body + b"<p>" + b"y" * rest + b"</p>" + tail
    assert len(doc) == 32 * 1024 * 1024
    assert len(parse_xml(doc)) == 4
    with pytest.raises(XmlTooLarge):
        parse_xml(doc + b"\n")


def test_size_is_checked_before_anything_else() -> None:
    """An oversized document is XmlTooLarge even when it is also a DOCTYPE attack."""
    data = (ATTACKS / "billion_laughs.xml").read_bytes()
    with pytest.raises(XmlTooLarge):
        parse_xml(data, ParseLimits(max_bytes=100))


def test_check_size() -> None:
    """check_size accepts up to max_bytes, rejects more and refuses negative sizes."""
    check_size(0)
    check_size(DEFAULT_LIMITS.max_bytes)
    check_size(10, ParseLimits(max_bytes=10))
    with pytest.raises(XmlTooLarge):
        check_size(DEFAULT_LIMITS.max_bytes + 1)
    with pytest.raises(XmlTooLarge):
        check_size(11, ParseLimits(max_bytes=10))
    with pytest.raises(ValueError, match="negative"):
        check_size(-1)


def test_oversized_text_node_is_too_large() -> None:
    """libxml2's own 10 MB text-node limit (no huge_tree) maps to XmlTooLarge."""
    with pytest.raises(XmlTooLarge, match="size limits"):
        parse_xml(b"<r>" + b"x" * 10_000_001 + b"</r>")


# --- depth ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("limits", "depth"),
    [
        (DEFAULT_LIMITS, 32),
        (ParseLimits(max_depth=1), 1),
        (ParseLimits(max_depth=5), 5),
        (ParseLimits(max_depth=LIBXML2_MAX_DEPTH), LIBXML2_MAX_DEPTH),
    ],
    ids=["default-32", "1", "5", "256"],
)
def test_depth_limit_is_respected_exactly(limits: ParseLimits, depth: int) -> None:
    """Nesting of exactly max_depth parses; one level more is XmlTooDeep."""
    assert limits.max_depth == depth
    assert parse_xml(nested(depth), limits).tag == "a"
    with pytest.raises(XmlTooDeep) as info:
        parse_xml(nested(depth + 1), limits)
    assert info.value.code == "xml_too_deep"
    assert info.value.context["limit"] == depth


def test_depth_probe_finds_a_deep_branch_beside_shallow_ones() -> None:
    """One deep branch among many shallow siblings is still found."""
    doc = b"<r>" + b"<s/>" * 1000 + nested(32) + b"<s/>" * 1000 + b"</r>"
    with pytest.raises(XmlTooDeep):
        parse_xml(doc)


@pytest.mark.parametrize(
    "kwargs",
    [{"max_depth": 0}, {"max_depth": LIBXML2_MAX_DEPTH + 1}, {"max_bytes": 0}],
    ids=["depth-0", "depth-257", "bytes-0"],
)
def test_limits_outside_their_range_are_a_configuration_error(kwargs: dict[str, int]) -> None:
    """ParseLimits refuses values the parser cannot honour."""
    with pytest.raises(ConfigurationError):
        ParseLimits(**kwargs)


# --- errors ---------------------------------------------------------------------------------


def test_syntax_error_is_one_line_with_position_and_cause() -> None:
    """A libxml2 message (even one with a newline) becomes one line with line and column."""
    with pytest.raises(XmlMalformed) as info:
        parse_xml(b"<abc>\n\x00</abc>")
    error = info.value
    assert "\n" not in error.message
    assert "line 2, column" in error.message
    assert error.context["line"] == 2
    assert isinstance(error.__cause__, etree.XMLSyntaxError)


@pytest.mark.parametrize("data", [b"", b"   ", b"not xml", b"<r>", b"<r/><r/>"])
def test_non_documents_are_malformed(data: bytes) -> None:
    """Empty, text-only, unclosed and two-root inputs are XmlMalformed."""
    with pytest.raises(XmlMalformed):
        parse_xml(data)


@pytest.mark.parametrize(
    "data", [b'<r><a xml:id="x"/><b xml:id="x"/></r>', b'<r xml:id="1x"/>'], ids=["dup", "ncname"]
)
def test_broken_xml_id_is_malformed(data: bytes) -> None:
    """With ID collection on (see _new_parser), a duplicate or invalid xml:id is rejected."""
    with pytest.raises(XmlMalformed):
        parse_xml(data)


def test_str_input_is_a_programming_error() -> None:
    """Passing str instead of bytes is a TypeError, not a message error."""
    with pytest.raises(TypeError):
        parse_xml("<r/>")  # type: ignore[arg-type]


def test_libxml2_error_codes_match_lxml() -> None:
    """The libxml2 error codes the module maps are the ones lxml reports."""
    assert xmlsafe._ERR_UNKNOWN_ENCODING == etree.ErrorTypes.ERR_UNKNOWN_ENCODING
    assert xmlsafe._ERR_UNSUPPORTED_ENCODING == etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING
    assert xmlsafe._ERR_INVALID_ENCODING == etree.ErrorTypes.ERR_INVALID_ENCODING
    assert xmlsafe._ERR_RESOURCE_LIMIT == etree.ErrorTypes.ERR_RESOURCE_LIMIT


# --- the parser on its own (defence in depth below the prolog scanner) ----------------------


def _dtd_entity_values(root: etree._Element) -> list[str]:
    """Return the values of all entities declared in the document's DTDs."""
    docinfo = root.getroottree().docinfo
    dtds = [d for d in (docinfo.internalDTD, docinfo.externalDTD) if d is not None]
    return [entity.content or "" for dtd in dtds for entity in dtd.entities()]


@pytest.mark.parametrize(
    "template",
    [
        '<!DOCTYPE r SYSTEM "{url}"><r/>',
        '<!DOCTYPE r PUBLIC "-//x//y" "{url}"><r/>',
        '<!DOCTYPE r [<!ENTITY % p SYSTEM "{url}"> %p;]><r/>',
        '<!DOCTYPE r [<!ENTITY x SYSTEM "{url}">]><r>&x;</r>',
    ],
    ids=["external-subset", "public-id", "parameter-entity", "general-entity"],
)
def test_parser_alone_reads_no_local_dtd_or_entity(tmp_path: Path, template: str) -> None:
    """Without the prolog scanner, the parser still reads no file:// DTD or entity."""
    secret = tmp_path / "secret.dtd"
    secret.write_text('<!ENTITY x "SECRET-MARKER">', encoding="utf-8")
    data = template.format(url=secret.as_uri()).encode()
    root = xmlsafe._parse(data, DEFAULT_LIMITS)
    assert root.getroottree().docinfo.externalDTD is None
    assert not any("SECRET-MARKER" in value for value in _dtd_entity_values(root))
    assert "SECRET-MARKER" not in etree.tostring(root, encoding="unicode")
    with pytest.raises(XmlDoctypeForbidden):
        xmlsafe._check_tree(root, data, 0, DEFAULT_LIMITS)


ENTITY_BOMBS = {"billion_laughs.xml", "quadratic_blowup.xml"}
DOCTYPE_FILES = sorted(name for name, error in EXPECTED.items() if error is XmlDoctypeForbidden)


@pytest.mark.parametrize("name", DOCTYPE_FILES)
def test_parser_alone_never_expands_and_tree_check_rejects_the_doctype(name: str) -> None:
    """Past the scanner, libxml2 refuses or keeps entities unexpanded, then the check rejects."""
    data = (ATTACKS / name).read_bytes()
    if name in ENTITY_BOMBS:
        # libxml2's own entity amplification guard stops these even without our checks.
        with pytest.raises(XmlTooLarge, match="amplification"):
            xmlsafe._parse(data, DEFAULT_LIMITS)
        return
    root = xmlsafe._parse(data, DEFAULT_LIMITS)
    text = etree.tostring(root, encoding="unicode")
    assert PASSWD_MARKER not in text
    assert len(text) < len(data)
    with pytest.raises(XmlDoctypeForbidden):
        xmlsafe._check_tree(root, data, 0, DEFAULT_LIMITS)


def test_tree_check_rejects_an_entity_reference_node() -> None:
    """An entity reference node left in a tree is XmlUnsafe."""
    root = etree.fromstring(b"<r/>")
    root.append(etree.Entity("xxe"))
    with pytest.raises(XmlUnsafe) as info:
        xmlsafe._check_tree(root, b"<r>&xxe;</r>", 0, DEFAULT_LIMITS)
    assert type(info.value) is XmlUnsafe


# --- concurrency ----------------------------------------------------------------------------


def test_eight_threads_parse_different_documents_at_once() -> None:
    """parse_xml from 8 threads at once gives each its own parser and correct results."""
    threads = 8
    docs = [batch(f"B{i}", items=i + 1) for i in range(threads)]
    too_deep = nested(DEFAULT_LIMITS.max_depth + 1)
    start = threading.Barrier(threads)

    def work(i: int) -> tuple[etree.XMLParser, list[str | None], int]:
        start.wait()
        seen: list[str | None] = []
        rejected = 0
        for n in range(100):
            root = parse_xml(docs[i])
            seen.append(batch_id(root))
            assert len(root.findall(f".//{{{NS}}}Item")) == i + 1
            if n % 10 == i % 10:
                try:
                    parse_xml(too_deep if i % 2 else b"<r><x></r>")
                except (XmlTooDeep, XmlMalformed):
                    rejected += 1
        return xmlsafe._state.parser, seen, rejected

    with ThreadPoolExecutor(max_workers=threads) as pool:
        results = list(pool.map(work, range(threads)))
    for i, (_, seen, rejected) in enumerate(results):
        assert seen == [f"B{i}"] * 100
        assert rejected == 10
    assert len({id(parser) for parser, _, _ in results}) == threads


# --- properties -----------------------------------------------------------------------------


def _accepted_or_connector_error(data: bytes) -> etree._Element | None:
    """Return the root if parse_xml accepts data, None if it raises a ConnectorError."""
    try:
        root = parse_xml(data)
    except ConnectorError:
        return None
    assert isinstance(root, etree._Element)
    return root


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_parse_or_raise_a_connector_error(data: bytes) -> None:
    """Any bytes either parse or raise a ConnectorError subclass, never anything else."""
    _accepted_or_connector_error(data)


@given(st.text(max_size=2000))
def test_arbitrary_text_parses_or_raises_a_connector_error(text: str) -> None:
    """Any UTF-8 text either parses or raises a ConnectorError subclass."""
    _accepted_or_connector_error(text.encode("utf-8", "surrogatepass"))


TOKENS = [
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b'<?xml version="1.0"?>',
    b'<?xml version="1.0" encoding="latin1"?>',
    b"<!DOCTYPE r>",
    b"<!DOCTYPE r [<!ENTITY e 'x'>]>",
    b"<!--",
    b"-->",
    b"<!-- <!DOCTYPE r> -->",
    b"<?pi <!DOCTYPE r>?>",
    b"<r>",
    b"</r>",
    b"<s/>",
    b"&e;",
    b"&amp;",
    b"<![CDATA[<!DOCTYPE r>]]>",
    b" ",
    b"\n",
    b"\x00",
    b"\xff",
    b"x",
]


@settings(max_examples=300)
@given(st.lists(st.sampled_from(TOKENS), max_size=30).map(b"".join))
def test_accepted_token_soup_has_no_dtd_entity_or_comment(data: bytes) -> None:
    """Whatever XML-like input is accepted carries no DTD, entity node, comment or PI."""
    root = _accepted_or_connector_error(data)
    if root is None:
        return
    docinfo = root.getroottree().docinfo
    assert docinfo.internalDTD is None
    assert docinfo.externalDTD is None
    assert not docinfo.doctype
    assert next(root.iter(etree.Entity, etree.Comment, etree.PI), None) is None
