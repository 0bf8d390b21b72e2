"""Minimized copies of declared items for other border agencies (agency-copy-1.xsd).

An agency (veterinary, phytosanitary, dangerous goods, ...) subscribes to HS chapters
(:class:`connector.core.routing.AgencyRoute`) and receives only the fields on its allow-list,
never the whole item: a field not listed never appears in its copy. The agency's answers are
informational; only Customs decides on release.

Allow-list paths are relative to the ``Item`` element, with local names separated by ``/``
(``ItemId``, ``Contents/Line/HsCode``, ``Sender/Address/Country``). A path to an element with
children stands for all the leaf fields below it. In the copy, each field carries its path with
a 1-based position on every step that occurs more than once in its parent
(``Contents/Line[2]/HsCode``), so repeated lines give one field each.

Used by the service like the declaration batch::

    copy_id = agency.new_agency_copy_id(route.agency, now, rng)
    root = agency.agency_copy(copy_id, connector_id, route.agency, now, declared, route.fields)
    signed = signing.sign(root, key)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Final

from lxml import etree

from connector.core.declarations import (
    Declared,
    check_aware,
    check_count,
    check_identifier,
    check_version,
    new_batch_id,
    parse_item,
)
from connector.core.outbound import xml_datetime
from connector.core.schemas import MessageKind
from connector.errors import ConfigurationError

__all__ = [
    "agency_copy",
    "minimized_fields",
    "new_agency_copy_id",
    "parse_field_path",
]

_NS: Final = MessageKind.AGENCY_COPY.namespace
_STEP: Final = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_MAX_PATH: Final = 200


def _tag(name: str) -> str:
    return f"{{{_NS}}}{name}"


_ROOT: Final = _tag("AgencyCopy")
_HEADER: Final = _tag("Header")
_COPY_ID: Final = _tag("CopyBatchId")
_CONNECTOR_ID: Final = _tag("ConnectorId")
_AGENCY: Final = _tag("Agency")
_CREATED_AT: Final = _tag("CreatedAt")
_ITEMS: Final = _tag("Items")
_ITEM: Final = _tag("Item")
_REFERENCE: Final = _tag("ItemReference")
_OPERATOR_ID: Final = _tag("OperatorId")
_VERSION: Final = _tag("Version")
_FIELDS: Final = _tag("Fields")
_FIELD: Final = _tag("Field")


def parse_field_path(path: str) -> tuple[str, ...]:
    """The steps of an allow-list path (``"Contents/Line/HsCode"``).

    Raises:
        ConfigurationError: not local names joined by ``/`` (no positions, wildcards, ``..``,
            ``//`` or namespaces), or longer than 200 characters.
    """
    steps = tuple(path.split("/")) if isinstance(path, str) else ()
    if not steps or len(path) > _MAX_PATH or not all(_STEP.fullmatch(s) for s in steps):
        raise ConfigurationError(
            f"allow-list field {path!r} is not a path of element names below Item "
            "(e.g. 'Contents/Line/HsCode')",
            key="fields",
        )
    return steps


def new_agency_copy_id(
    agency: str, now: datetime, rng_or_token: random.Random | str | None = None
) -> str:
    """A new copy batch id: ``AC-<agency>-<YYYYMMDDTHHMMSSmmmZ>-<12 hex>`` (see
    :func:`connector.core.declarations.new_batch_id`)."""
    return new_batch_id("AC", agency, now, rng_or_token)


def _leaves(node: etree._Element, path: str, out: list[tuple[str, str]]) -> None:
    children = [child for child in node if isinstance(child.tag, str)]
    if not children:
        value = " ".join((node.text or "").split())
        if value:
            out.append((path, value))
        return
    counts: dict[str, int] = {}
    for child in children:
        counts[child.tag] = counts.get(child.tag, 0) + 1
    seen: dict[str, int] = {}
    for child in children:
        name = etree.QName(child).localname
        if counts[child.tag] > 1:
            seen[child.tag] = seen.get(child.tag, 0) + 1
            name = f"{name}[{seen[child.tag]}]"
        _leaves(child, f"{path}/{name}", out)


def _walk(
    node: etree._Element,
    namespace: str | None,
    steps: tuple[str, ...],
    path: str,
    out: list[tuple[str, str]],
) -> None:
    if not steps:
        _leaves(node, path, out)
        return
    step = steps[0]
    matches = list(node.iterchildren(f"{{{namespace}}}{step}" if namespace else step))
    many = len(matches) > 1
    for position, child in enumerate(matches, 1):
        name = f"{step}[{position}]" if many else step
        _walk(child, namespace, steps[1:], f"{path}/{name}" if path else name, out)


def minimized_fields(item: etree._Element, fields: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``(path, value)`` of every allow-listed leaf of ``item``, by allow-list then document
    order; values with white space collapsed, empty ones left out.

    Raises:
        ConfigurationError: a path of ``fields`` is malformed (see :func:`parse_field_path`).
    """
    namespace = etree.QName(item).namespace
    out: list[tuple[str, str]] = []
    for path in dict.fromkeys(fields):
        _walk(item, namespace, parse_field_path(path), "", out)
    return tuple(out)


def agency_copy(
    batch_id: str,
    connector_id: str,
    agency: str,
    created_at: datetime,
    declared: Sequence[Declared],
    fields: Sequence[str],
) -> etree._Element:
    """The unsigned ``AgencyCopy`` root (agency-copy-1.xsd): ``declared`` minimized to
    ``fields``. Findings are not copied. Sign it with :func:`connector.core.signing.sign`.

    Raises:
        ConfigurationError: a malformed allow-list path.
        InvalidMessage: 0 or more than 10,000 items, an id that is not an identifier, a naive
            ``created_at``, a version below 1, or a stored item that does not parse.
    """
    paths = tuple(dict.fromkeys(fields))
    for path in paths:
        parse_field_path(path)
    check_count(len(declared), "agency copy")
    sub = etree.SubElement
    root = etree.Element(_ROOT, nsmap={None: _NS})  # type: ignore[dict-item]
    header = sub(root, _HEADER)
    sub(header, _COPY_ID).text = check_identifier(batch_id, "copy batch id")
    sub(header, _CONNECTOR_ID).text = check_identifier(connector_id, "connector id")
    sub(header, _AGENCY).text = check_identifier(agency, "agency")
    sub(header, _CREATED_AT).text = xml_datetime(check_aware(created_at, "created_at"))
    items = sub(root, _ITEMS)
    for entry in declared:
        reference = check_identifier(entry.reference, "item reference")
        node = sub(items, _ITEM)
        sub(node, _REFERENCE).text = reference
        sub(node, _OPERATOR_ID).text = check_identifier(entry.operator_id, "operator id")
        sub(node, _VERSION).text = check_version(entry.version, reference)
        container = sub(node, _FIELDS)
        for path, value in minimized_fields(parse_item(entry.item_xml, reference), paths):
            field = sub(container, _FIELD, path=path)
            field.text = value
    return root
