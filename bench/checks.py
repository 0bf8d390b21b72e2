"""Intake throughput with the data-quality and compliance checks on, against checks off.

The baseline validates the batch (parse, schema, business rules); each figure validates the
same bytes and then runs every check on the accepted items. Target: ratio >= 0.8 (the checks
cost at most 20% of intake throughput).

- ``valid``: a generated batch without faults (the cheapest validation, so the strictest
  ratio); ``5% faults``: with 5% rule and schema faults and 1% seeded check problems;
- both run :func:`connector.core.checks.check_report`, what intake runs: it scans the parsed
  elements and builds views of suspect items only;
- ``records``: the same checks over :class:`PostalItem` records built with
  ``report.accepted_items()``, to show what building the records costs;
- ``distinct names``: every party name made unique, so that no screening verdict is reused
  within the batch (the worst case for the per-run memo);
- ``all addresses``: ``address_screening = "all"``, every address line screened;
- ``intake``: :meth:`AcceptService.accept_batch` end to end into the in-memory store
  (validate, check, build the stored items, store, acknowledge), with the checks of a
  :class:`~connector.checks_loader.CheckConfigSource` as the service runs them, against the
  same intake with checks off.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from functools import partial

from lxml import etree

from bench.timing import Figure, interleaved
from connector import checks_loader
from connector.core import checks
from connector.core.checks.parties import AddressScreening, Screening
from connector.core.checks.seeding import seed_check_problems
from connector.core.inbound import validate_item_batch
from connector.flow.accept import AcceptService, Checks
from connector.sample import generate_batch
from connector.testing import FrozenClock, InMemoryItemStore


def _sample(items: int) -> bytes:
    batch = generate_batch(items, invalid_ratio=0.05, seed=7)
    avoid = [fault.index for fault in batch.faults]
    return seed_check_problems(batch.xml, ratio=0.01, seed=7, avoid=avoid).xml


def _distinct_names(data: bytes) -> bytes:
    """The batch with a unique word appended to every party name."""
    root = etree.fromstring(data)
    namespace = etree.QName(root).namespace
    for n, node in enumerate(root.iter(f"{{{namespace}}}Name")):
        word = ""
        while True:
            n, letter = divmod(n, 26)
            word += "bcdfghjklmnpqrstvwxzaeiouy"[letter]
            if not n:
                break
        node.text = f"{node.text} {word.title()}"
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _validate(data: bytes) -> object:
    return validate_item_batch(data)


def _with_checks(data: bytes, config: checks.CheckConfig) -> tuple[checks.Finding, ...]:
    return checks.check_report(validate_item_batch(data), config)


def _with_records(data: bytes, config: checks.CheckConfig) -> tuple[checks.Finding, ...]:
    report = validate_item_batch(data)
    items = zip((item.item_index for item in report.accepted), report.accepted_items(), strict=True)
    return checks.run_checks(items, config)


def _intake(data: bytes, source: Checks) -> object:
    """One batch through the accept stage into a fresh in-memory store."""
    service = AcceptService(store=InMemoryItemStore(), clock=FrozenClock(), checks=source)
    return asyncio.run(service.accept_batch(_operator(data), data))


def _operator(data: bytes) -> str:
    root = etree.fromstring(data)
    return (root[0].findtext(f"{{{etree.QName(root).namespace}}}OperatorId") or "").strip()


def _all_addresses(config: checks.CheckConfig) -> checks.CheckConfig:
    listed = config.screening.parties
    settings = replace(listed.settings, address_screening=AddressScreening.ALL)
    return replace(config, screening=Screening(listed.with_settings(settings)))


def run(quick: bool) -> list[Figure]:
    config = checks_loader.default_check_config()
    items = 1_000 if quick else 10_000
    repeat = 2 if quick else 5
    valid = generate_batch(items, seed=7).xml
    faulty = _sample(items)
    label = f"{items:,} items"
    cases = (
        ("valid", valid, _with_checks, config, repeat),
        ("5% faults", faulty, _with_checks, config, repeat),
        ("valid, records", valid, _with_records, config, 2),
        ("valid, distinct names", _distinct_names(valid), _with_checks, config, repeat),
        ("valid, all addresses", valid, _with_checks, _all_addresses(config), repeat),
    )
    figures = []
    for name, data, run_checks, case_config, times in cases:
        seconds, base = interleaved(
            partial(run_checks, data, case_config), partial(_validate, data), times
        )
        figures.append(Figure(f"checks on/off, {label} ({name})", items, seconds, base))
    source = checks_loader.CheckConfigSource()
    for name, data in (("valid", valid), ("5% faults", faulty)):
        seconds, base = interleaved(
            partial(_intake, data, source), partial(_intake, data, None), repeat
        )
        figures.append(Figure(f"intake checks on/off, {label} ({name})", items, seconds, base))
    return figures


if __name__ == "__main__":
    for figure in run(quick=False):
        print(
            f"{figure.name:<52} {figure.items_per_s:>10,.0f}/s  "
            f"off {figure.baseline_items_per_s:>10,.0f}/s  ratio {figure.ratio:.2f}"
        )
