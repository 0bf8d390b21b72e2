"""The message schemas under xsd/ and the example messages under tests/data/messages/.

Every schema compiles with two independent XSD 1.0 processors (libxml2 through lxml, and
xmlschema), every example is valid for the schema of its root namespace, broken copies of the
examples are invalid, and the file and namespace naming rules hold. New schemas and examples are
picked up from the directory listings.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

ROOT = Path(__file__).resolve().parents[2]
XSD_DIR = ROOT / "xsd"
MESSAGES_DIR = ROOT / "tests" / "data" / "messages"

XS = "http://www.w3.org/2001/XMLSchema"
DSIG = "http://www.w3.org/2000/09/xmldsig#"
NAMESPACE_RE = re.compile(
    r"urn:ead-connector:(?P<kind>[a-z][a-z0-9]*(?:-[a-z0-9]+)*):(?P<major>[1-9][0-9]*)"
)
FILE_NAME_RE = re.compile(r"(?P<kind>[a-z][a-z0-9]*(?:-[a-z0-9]+)*)-(?P<major>[1-9][0-9]*)\.xsd")

# Message kinds that must exist, and those whose root ends with an optional ds:Signature.
EXPECTED_KINDS = {
    "item-batch",
    "acknowledgement",
    "declaration-batch",
    "customs-response",
    "item-notice",
    "referral-answer",
    "amendment",
}
SIGNED_KINDS = {
    "declaration-batch",
    "customs-response",
    "item-notice",
    "referral-answer",
    "agency-copy",
    "declaration-receipt",
}

XMLLINT = shutil.which("xmllint")

# Examples are parsed like untrusted input: no DTD, no entities, no network.
PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)


def _parse(path: Path) -> etree._ElementTree:
    return etree.parse(str(path), PARSER)


def _target_namespace(xsd: Path) -> str | None:
    return _parse(xsd).getroot().get("targetNamespace")


ALL_XSD = sorted(XSD_DIR.glob("*.xsd"))
MESSAGE_XSD = [p for p in ALL_XSD if _target_namespace(p)]
EXAMPLES = sorted(MESSAGES_DIR.glob("*.xml"))


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@cache
def _schema_for_namespace() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for xsd in MESSAGE_XSD:
        namespace = _target_namespace(xsd)
        assert namespace is not None
        assert namespace not in found, f"{xsd.name} and {found[namespace].name} share {namespace}"
        found[namespace] = xsd
    return found


def _schema_of(doc: etree._ElementTree) -> Path:
    namespace = etree.QName(doc.getroot()).namespace
    schemas = _schema_for_namespace()
    assert namespace in schemas, f"no schema in xsd/ has targetNamespace {namespace!r}"
    return schemas[namespace]


def _kind_of_namespace(namespace: str) -> str:
    match = NAMESPACE_RE.fullmatch(namespace)
    assert match, f"namespace {namespace!r} is not urn:ead-connector:<kind>:<major>"
    return match["kind"]


def _kind_of(doc: etree._ElementTree) -> str:
    return _kind_of_namespace(etree.QName(doc.getroot()).namespace or "")


@cache
def _lxml_schema(xsd: Path) -> etree.XMLSchema:
    return etree.XMLSchema(_parse(xsd))


@cache
def _xmlschema_schema(xsd: Path) -> xmlschema.XMLSchema10:
    return xmlschema.XMLSchema10(str(xsd), allow="local")


def _lxml_errors(xsd: Path, doc: etree._ElementTree) -> list[str]:
    schema = _lxml_schema(xsd)
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def _xmlschema_errors(xsd: Path, doc: etree._ElementTree) -> list[str]:
    # Re-serialized so that xmlschema parses the document itself, independently of lxml's tree.
    data = etree.tostring(doc, xml_declaration=True, encoding="UTF-8")
    return [str(e.reason) for e in _xmlschema_schema(xsd).iter_errors(io.BytesIO(data))]


def _assert_valid(xsd: Path, doc: etree._ElementTree) -> None:
    assert _lxml_errors(xsd, doc) == [], f"lxml: not valid for {xsd.name}"
    assert _xmlschema_errors(xsd, doc) == [], f"xmlschema: not valid for {xsd.name}"


def _assert_invalid(xsd: Path, doc: etree._ElementTree) -> None:
    assert _lxml_errors(xsd, doc), f"lxml accepted an invalid document for {xsd.name}"
    assert _xmlschema_errors(xsd, doc), f"xmlschema accepted an invalid document for {xsd.name}"


# --- inventory -----------------------------------------------------------------------------


def test_every_expected_message_kind_has_a_schema_and_an_example() -> None:
    schema_kinds = {_kind_of_namespace(_target_namespace(p) or "") for p in MESSAGE_XSD}
    example_kinds = {_kind_of(_parse(p)) for p in EXAMPLES}
    assert not EXPECTED_KINDS - schema_kinds, "expected message schemas are missing"
    assert not schema_kinds - example_kinds, "message schemas without an example"


# --- (a) every message schema compiles -------------------------------------------------------


@pytest.mark.parametrize("xsd", MESSAGE_XSD, ids=_ids(MESSAGE_XSD))
def test_schema_compiles_with_lxml(xsd: Path) -> None:
    schema = _lxml_schema(xsd)
    assert isinstance(schema, etree.XMLSchema)


@pytest.mark.parametrize("xsd", MESSAGE_XSD, ids=_ids(MESSAGE_XSD))
def test_schema_compiles_with_xmlschema_as_xsd_1_0(xsd: Path) -> None:
    schema = _xmlschema_schema(xsd)
    assert schema.XSD_VERSION == "1.0"
    assert schema.validity == "valid"
    assert schema.target_namespace == _target_namespace(xsd)


# --- (b), (c) every example is valid ---------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_is_utf8_without_doctype(example: Path) -> None:
    docinfo = _parse(example).docinfo
    assert docinfo.encoding == "UTF-8"
    assert docinfo.doctype == ""
    assert b"<!DOCTYPE" not in example.read_bytes()


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_file_is_named_after_its_kind(example: Path) -> None:
    kind = _kind_of(_parse(example))
    assert example.stem == kind or example.stem.startswith(f"{kind}-")


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_is_valid_with_lxml(example: Path) -> None:
    doc = _parse(example)
    xsd = _schema_of(doc)
    assert _lxml_errors(xsd, doc) == []


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_is_valid_with_xmlschema(example: Path) -> None:
    doc = _parse(example)
    xsd = _schema_of(doc)
    errors = [str(e.reason) for e in _xmlschema_schema(xsd).iter_errors(str(example))]
    assert errors == []


@pytest.mark.skipif(XMLLINT is None, reason="xmllint (libxml2-utils) is not installed")
@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_example_is_valid_with_xmllint(example: Path) -> None:
    assert XMLLINT is not None
    xsd = _schema_of(_parse(example))
    result = subprocess.run(
        [XMLLINT, "--noout", "--nonet", "--schema", str(xsd), str(example)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- (d) broken copies are invalid -----------------------------------------------------------

Mutation = Callable[[etree._Element], None]


def _drop_first_child(root: etree._Element) -> None:
    # The first child of every message root is a required identifier or header.
    root.remove(root[0])


def _append_unknown_element(root: etree._Element) -> None:
    etree.SubElement(root, etree.QName(etree.QName(root).namespace, "Unexpected"))


def _append_dsig_element(root: etree._Element) -> None:
    signature = etree.SubElement(root, etree.QName(DSIG, "Signature"), nsmap={"ds": DSIG})
    etree.SubElement(signature, etree.QName(DSIG, "SignedInfo"))
    etree.SubElement(signature, etree.QName(DSIG, "SignatureValue")).text = "AAAA"


def _append_foreign_signature(root: etree._Element) -> None:
    etree.SubElement(root, etree.QName("urn:example:not-xmldsig", "Signature"))


GENERIC_MUTATIONS: dict[str, Mutation] = {
    "drop-first-child": _drop_first_child,
    "append-unknown-element": _append_unknown_element,
}


def _mutated(example: Path, mutate: Mutation) -> etree._ElementTree:
    doc = _parse(example)
    before = etree.tostring(doc)
    mutate(doc.getroot())
    assert etree.tostring(doc) != before, "the mutation changed nothing"
    return doc


@pytest.mark.parametrize("mutation", GENERIC_MUTATIONS)
@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_broken_copy_of_example_is_invalid(example: Path, mutation: str) -> None:
    doc = _mutated(example, GENERIC_MUTATIONS[mutation])
    _assert_invalid(_schema_of(doc), doc)


@pytest.mark.parametrize("example", EXAMPLES, ids=_ids(EXAMPLES))
def test_signature_is_admitted_only_where_declared(example: Path) -> None:
    doc = _mutated(example, _append_dsig_element)
    xsd = _schema_of(doc)
    if _kind_of(doc) in SIGNED_KINDS:
        _assert_valid(xsd, doc)
        # One signature at most, and only from the XML-DSig namespace.
        _append_dsig_element(doc.getroot())
        _assert_invalid(xsd, doc)
        doc = _mutated(example, _append_foreign_signature)
        _assert_invalid(xsd, doc)
    else:
        _assert_invalid(xsd, doc)


# Targeted changes, per kind, to the alternatives and limits each schema defines. Paths are
# relative to the root, without namespace; every step is put in the root's namespace.


def _qualified(root: etree._Element, path: str) -> str:
    namespace = etree.QName(root).namespace
    return "/".join(f"{{{namespace}}}{step}" for step in path.split("/"))


def _find(root: etree._Element, path: str) -> etree._Element:
    found = root.find(_qualified(root, path))
    assert found is not None, f"{path} not found under {etree.QName(root).localname}"
    return found


def _detach(element: etree._Element) -> None:
    parent = element.getparent()
    assert parent is not None
    parent.remove(element)


def _fragment(root: etree._Element, xml: str) -> etree._Element:
    namespace = etree.QName(root).namespace
    return etree.fromstring(f'<wrapper xmlns="{namespace}">{xml}</wrapper>', PARSER)[0]


def set_text(path: str, text: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        _find(root, path).text = text

    return mutate


def remove(*paths: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        for path in paths:
            _detach(_find(root, path))

    return mutate


def remove_all(*paths: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        for path in paths:
            for element in root.findall(_qualified(root, path)):
                _detach(element)

    return mutate


def replace(path: str, xml: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        old = _find(root, path)
        parent = old.getparent()
        assert parent is not None
        parent.replace(old, _fragment(root, xml))

    return mutate


def insert_before(path: str, xml: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        _find(root, path).addprevious(_fragment(root, xml))

    return mutate


def repeat(path: str, total: int) -> Mutation:
    def mutate(root: etree._Element) -> None:
        element = _find(root, path)
        parent = element.getparent()
        assert parent is not None
        for _ in range(total - len(parent)):
            parent.append(etree.fromstring(etree.tostring(element)))

    return mutate


def set_path(path: str) -> Mutation:
    def mutate(root: etree._Element) -> None:
        _find(root, "Items/Item/Fields/Field").set("path", path)

    return mutate


SCREENING = (
    "<Screening><Method>XRY</Method><Outcome>CLEAR</Outcome>"
    "<ScreenedAt>2026-11-26T12:30:00Z</ScreenedAt></Screening>"
)
BATCH_ERROR = (
    "<BatchError><Code>duplicate_batch</Code>"
    "<Message>Batch id already received with other content.</Message></BatchError>"
)

VALID_VARIANTS: list[tuple[str, str, Mutation]] = [
    ("acknowledgement", "batch-error-instead-of-items", replace("Items", BATCH_ERROR)),
    ("acknowledgement", "no-items", remove_all("Items/Item")),
    ("referral-answer", "screening-answer", replace("Information", SCREENING)),
    ("referral-answer", "free-text-only", remove("Information/Documents")),
    ("referral-answer", "documents-only", remove("Information/FreeText")),
    ("amendment", "cancel-only", remove_all("Replace")),
    ("amendment", "replace-only", remove_all("Cancel")),
    ("customs-response", "without-batch-id", remove("DeclarationBatchId")),
    ("declaration-receipt", "without-customs-reference", remove("CustomsReference")),
    ("declaration-batch", "without-findings", remove("Declarations/Declaration[2]/Findings")),
]

INVALID_VARIANTS: list[tuple[str, str, Mutation]] = [
    ("item-batch", "lower-case-item-id", set_text("Items/Item/ItemId", "rr123456785ch")),
    ("item-batch", "no-items", remove_all("Items/Item")),
    ("acknowledgement", "unknown-status", set_text("Items/Item/Status", "ok")),
    ("acknowledgement", "batch-error-and-items", insert_before("Items", BATCH_ERROR)),
    (
        "acknowledgement",
        "upper-case-error-code",
        set_text("Items/Item[2]/Errors/Error/Code", "E42"),
    ),
    ("acknowledgement", "error-without-path", remove("Items/Item[2]/Errors/Error/Path")),
    ("acknowledgement", "item-id-too-long", set_text("Items/Item[2]/ItemId", "R" * 65)),
    ("declaration-batch", "version-zero", set_text("Declarations/Declaration/Version", "0")),
    (
        "declaration-batch",
        "unknown-severity",
        set_text("Declarations/Declaration[2]/Findings/Finding/Severity", "info"),
    ),
    ("declaration-batch", "no-declarations", remove_all("Declarations/Declaration")),
    ("customs-response", "unknown-decision-code", set_text("Decisions/Decision/Code", "MAYBE")),
    (
        "customs-response",
        "unknown-screening-method",
        set_text("Decisions/Decision[3]/ScreeningMethod", "XRAY"),
    ),
    ("customs-response", "no-decisions", remove_all("Decisions/Decision")),
    ("declaration-receipt", "unknown-status", set_text("Status", "received")),
    ("declaration-receipt", "zero-items", set_text("ItemCount", "0")),
    ("declaration-receipt", "too-many-items", set_text("ItemCount", "10001")),
    ("item-notice", "final-not-boolean", set_text("Final", "no")),
    ("item-notice", "unknown-decision-code", set_text("Decision", "RELEASED")),
    ("item-notice", "bad-item-id", set_text("ItemId", "CP20481736CH")),
    (
        "referral-answer",
        "empty-information",
        remove("Information/FreeText", "Information/Documents"),
    ),
    ("referral-answer", "too-many-documents", repeat("Information/Documents/Document", 21)),
    ("referral-answer", "information-and-screening", insert_before("Information", SCREENING)),
    (
        "referral-answer",
        "unknown-document-type",
        set_text("Information/Documents/Document/Type", "PDF"),
    ),
    ("amendment", "nothing-to-amend", remove_all("Replace", "Cancel")),
    ("amendment", "cancel-without-reason", remove("Cancel/Reason")),
    ("amendment", "version-zero", set_text("Replace/Version", "0")),
    ("agency-copy", "no-items", remove_all("Items/Item")),
    ("agency-copy", "empty-field-value", set_text("Items/Item/Fields/Field", "")),
    ("agency-copy", "positioned-path-zero", set_path("Contents/Line[0]/HsCode")),
    ("agency-copy", "whole-item-in-a-copy", insert_before("Items/Item/Fields", "<Item/>")),
]


def _example_of_kind(kind: str) -> Path:
    for example in EXAMPLES:
        if _kind_of(_parse(example)) == kind:
            return example
    raise AssertionError(f"no example of kind {kind} in {MESSAGES_DIR}")


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [(kind, mutate) for kind, _, mutate in VALID_VARIANTS],
    ids=[f"{kind}:{name}" for kind, name, _ in VALID_VARIANTS],
)
def test_variant_of_example_is_valid(kind: str, mutate: Mutation) -> None:
    doc = _mutated(_example_of_kind(kind), mutate)
    _assert_valid(_schema_of(doc), doc)


@pytest.mark.parametrize(
    ("kind", "mutate"),
    [(kind, mutate) for kind, _, mutate in INVALID_VARIANTS],
    ids=[f"{kind}:{name}" for kind, name, _ in INVALID_VARIANTS],
)
def test_variant_of_example_is_invalid(kind: str, mutate: Mutation) -> None:
    doc = _mutated(_example_of_kind(kind), mutate)
    _assert_invalid(_schema_of(doc), doc)


def test_every_message_kind_has_a_targeted_negative() -> None:
    kinds = {_kind_of(_parse(p)) for p in EXAMPLES}
    covered = {kind for kind, _, _ in INVALID_VARIANTS}
    assert kinds <= covered, f"no targeted negative for {kinds - covered}"


# --- (e) naming and versioning ---------------------------------------------------------------


@pytest.mark.parametrize("xsd", ALL_XSD, ids=_ids(ALL_XSD))
def test_schema_file_name_carries_its_major_version(xsd: Path) -> None:
    assert FILE_NAME_RE.fullmatch(xsd.name), f"{xsd.name} is not <name>-<major>.xsd"


@pytest.mark.parametrize("xsd", MESSAGE_XSD, ids=_ids(MESSAGE_XSD))
def test_target_namespace_matches_file_name(xsd: Path) -> None:
    file_match = FILE_NAME_RE.fullmatch(xsd.name)
    namespace = _target_namespace(xsd) or ""
    namespace_match = NAMESPACE_RE.fullmatch(namespace)
    assert file_match, f"{xsd.name} is not <kind>-<major>.xsd"
    assert namespace_match, f"{namespace!r} is not urn:ead-connector:<kind>:<major>"
    assert namespace_match["kind"] == file_match["kind"]
    assert namespace_match["major"] == file_match["major"]


@pytest.mark.parametrize("xsd", MESSAGE_XSD, ids=_ids(MESSAGE_XSD))
def test_message_schema_is_qualified_with_one_root_element(xsd: Path) -> None:
    root = _parse(xsd).getroot()
    assert root.get("elementFormDefault") == "qualified"
    assert root.nsmap.get(None) == root.get("targetNamespace")
    assert len(root.findall(f"{{{XS}}}element")) == 1


INCLUDED_XSD = [p for p in ALL_XSD if p not in MESSAGE_XSD]


@pytest.mark.parametrize("xsd", INCLUDED_XSD, ids=_ids(INCLUDED_XSD))
def test_schema_without_target_namespace_is_only_included(xsd: Path) -> None:
    # A chameleon schema takes the namespace of the message that includes it; a global element
    # in it would become a second root in every message, so it declares types only.
    root = _parse(xsd).getroot()
    assert root.findall(f"{{{XS}}}element") == []
    includers = [
        p
        for p in ALL_XSD
        for inc in _parse(p).getroot().iterfind(f"{{{XS}}}include")
        if inc.get("schemaLocation") == xsd.name
    ]
    assert includers, f"{xsd.name} is included by no schema"
