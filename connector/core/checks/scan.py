"""The checks over the elements of a validated batch, at intake speed.

Two passes. The first reads, by position, only the few values the checks look at (content
line descriptions and HS codes, party names, address lines) from every accepted item and asks
one question per *distinct* value, memoized for the run: could this value give a finding?
Most items raise no question at all, and building a :class:`PostalItem` for each (about as
costly as validating it) is avoided. The second pass builds a view of each suspect item only
and judges it with exactly the code the record reader uses
(:func:`connector.core.checks.records.item_findings`), so both readers agree by construction.

Positions come from the schema (the item was accepted, so it is schema-valid): an item's
fourth child is ``OfficeOfOrigin`` (a leaf) or ``Sender`` (which has children); its last is
``Comments`` (a leaf) or ``Transport``; a line's sixth child is ``HsCode`` (digits) or
``OriginCountry`` (letters). Telling them apart by shape avoids building tag names.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from lxml import etree

from connector.core.checks.config import CheckConfig, Verdicts
from connector.core.checks.outcome import Finding
from connector.core.checks.records import item_findings
from connector.core.checks.subject import ItemView, LineView, PartyView
from connector.core.inbound import ValidationReport
from connector.core.model import AcceptedItem

__all__ = ["check_report"]


def _strip(text: str | None) -> str:
    return (text or "").strip()


def _party_view(role: str, party: etree._Element, verdicts: Verdicts) -> PartyView:
    # Party: Name, Address (Street+, City, Postcode?, Subdivision?, Country), ...
    name = _strip(party[0].text)
    address = party[1]
    text = ""
    # The address only counts for a matched name, or when every address is screened.
    if verdicts.parties and (verdicts.screens_all_addresses or verdicts.name(name) is not None):
        values = (value.strip() for value in _texts(address))
        text = " ".join(value for value in values if value)
    return PartyView(role, name, text, _strip(address[-1].text))


def _view(
    index: int, item_id: str, item: etree._Element, items_path: str, verdicts: Verdicts
) -> ItemView:
    """The view of one schema-valid item element (for suspect items only)."""
    at = 3 if len(item[3]) else 4  # Sender, or OfficeOfOrigin before it
    end = -1 if len(item[-1]) else -2  # Transport, or Comments after it
    # Transport: DepartureCountry, DepartureAirport?, DepartureTime?, DestinationCountry, ...
    namespace = etree.QName(item).namespace
    destination = item[end].findtext(f"{{{namespace}}}DestinationCountry")
    lines = []
    for line in item[end - 1]:
        # Line: Description, Quantity, NetWeight, Value, Currency, HsCode?, OriginCountry
        sixth = _strip(line[5].text)
        lines.append(LineView(_strip(line[0].text), sixth if sixth[:1].isdigit() else None))
    return ItemView(
        index=index,
        item_id=item_id,
        category=_strip(item[1].text),
        destination=_strip(destination),
        sender=_party_view("Sender", item[at], verdicts),
        addressee=_party_view("Addressee", item[at + 1], verdicts),
        lines=tuple(lines),
        path=f"{items_path}/Item[{index + 1}]",
    )


class _Lines:
    """Could this content line give a finding? One answer per distinct line and run."""

    def __init__(self, verdicts: Verdicts) -> None:
        self.verdicts = verdicts
        self.known: dict[tuple[str | None, str | None], bool] = {}

    def ask(self, description: str | None, code: str | None) -> bool:
        verdicts = self.verdicts
        text = _strip(description)
        hs = _strip(code) or None
        suspect = (
            (verdicts.hs and hs is not None and verdicts.code(hs) is not None)
            or (
                verdicts.descriptions
                and (
                    verdicts.vague(text) is not None
                    or (hs is not None and verdicts.chapter(text, hs) is not None)
                )
            )
            or (verdicts.prohibited and verdicts.may_be_article(text, hs))
        )
        self.known[description, code] = suspect
        return suspect


def _suspects(
    report: ValidationReport, verdicts: Verdicts
) -> list[tuple[AcceptedItem, etree._Element]]:
    """The accepted items with a value that could give a finding, in item order."""
    want_lines = verdicts.hs or verdicts.descriptions or verdicts.prohibited
    want_parties = verdicts.parties
    listed = verdicts.config.screening.parties
    screen_all = verdicts.screens_all_addresses
    address = listed.address_may_match if screen_all and listed.has_addresses else None
    lines = _Lines(verdicts)
    known, ask = lines.known, lines.ask
    # item, whether a line or address is suspect, sender name, addressee name
    rows: list[tuple[AcceptedItem, etree._Element, bool, str | None, str | None]] = []
    for accepted, item in report.accepted_elements():
        suspect = False
        if want_lines:
            for line in item[-2] if len(item[-1]) else item[-3]:  # Contents
                description = line[0].text
                sixth = line[5].text
                code = sixth if sixth and sixth.lstrip()[:1].isdigit() else None
                found = known.get((description, code))
                if found is None:
                    found = ask(description, code)
                suspect = suspect or found
        if want_parties:
            at = 3 if len(item[3]) else 4
            sender, addressee = item[at], item[at + 1]
            if address is not None and not suspect:
                suspect = address(" ".join(_texts(sender[1]))) or address(
                    " ".join(_texts(addressee[1]))
                )
            rows.append((accepted, item, suspect, sender[0].text, addressee[0].text))
        elif suspect:
            rows.append((accepted, item, True, None, None))
    if not want_parties:
        return [(accepted, item) for accepted, item, _, _, _ in rows]
    # The names all at once: normalizing them together is several times faster.
    names = {name: _strip(name) for row in rows for name in row[3:] if name is not None}
    verdicts.prepare_names(names.values())
    flagged = {raw for raw, name in names.items() if verdicts.name(name) is not None}
    return [
        (accepted, item)
        for accepted, item, suspect, sender, addressee in rows
        if suspect or sender in flagged or addressee in flagged
    ]


def _texts(element: etree._Element) -> Iterator[str]:
    return cast("Iterator[str]", element.itertext())


def check_report(report: ValidationReport, config: CheckConfig) -> tuple[Finding, ...]:
    """Findings on the accepted items of a validated item batch, ordered by item."""
    if not config.enabled or not report.accepted:
        return ()
    verdicts = Verdicts(config)
    root = report.document
    items_path = f"/{etree.QName(root).localname}/{etree.QName(root[1]).localname}"
    found: list[Finding] = []
    for accepted, element in _suspects(report, verdicts):
        view = _view(accepted.item_index, accepted.item_id, element, items_path, verdicts)
        found.extend(item_findings(verdicts, view))
    return tuple(found)
