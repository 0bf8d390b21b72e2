"""Validation throughput against the raw lxml parse + XSD validate baseline on the same bytes."""

from __future__ import annotations

from functools import partial

from lxml import etree

from bench.timing import Figure, interleaved
from connector.core.inbound import validate_item_batch
from connector.core.schemas import MessageKind, default_registry
from connector.sample import generate_batch


def _raw_parse_and_validate(schema: etree.XMLSchema, parser: etree.XMLParser, data: bytes) -> bool:
    """The baseline: what lxml alone costs to parse and schema-check the same bytes."""
    return bool(schema.validate(etree.fromstring(data, parser)))


def run(quick: bool) -> list[Figure]:
    registry = default_registry()
    schema = registry.lxml(MessageKind.ITEM_BATCH)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    figures = []
    sizes = (1_000,) if quick else (1_000, 10_000)
    for items in sizes:
        repeat = (3 if quick else 10) if items > 1_000 else (5 if quick else 30)
        for ratio in (0.0, 0.1):
            data = generate_batch(items, invalid_ratio=ratio, seed=7).xml
            seconds, base = interleaved(
                partial(validate_item_batch, data),
                partial(_raw_parse_and_validate, schema, parser, data),
                repeat,
            )
            label = "valid" if ratio == 0 else "10% invalid"
            figures.append(Figure(f"validate {items:,} items ({label})", items, seconds, base))
    return figures
