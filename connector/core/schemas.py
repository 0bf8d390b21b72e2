"""The XSD registry: every message kind, its schema, compiled once.

Schemas are resolved from the package (``connector/_xsd`` in an installed wheel, the
repository's ``xsd/`` in a checkout) or from an explicit directory, never from the current
directory. Each schema is compiled at first use and cached: xmlschema once per process behind
a lock, lxml once per thread (an lxml validator keeps its error log on the instance, so one
instance must not validate in two threads at once); lxml compilations take turns on one
process-wide lock, as libxml2's schema compiler is not thread-safe.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from lxml import etree

from connector.errors import ConfigurationError, MessageKindUnknown

__all__ = ["MessageKind", "SchemaRegistry", "default_registry", "default_xsd_dir"]


class MessageKind(StrEnum):
    """Every message the connector reads or writes, with its schema file."""

    ITEM_BATCH = "item-batch"
    ACKNOWLEDGEMENT = "acknowledgement"
    DECLARATION_BATCH = "declaration-batch"
    CUSTOMS_RESPONSE = "customs-response"
    ITEM_NOTICE = "item-notice"
    REFERRAL_ANSWER = "referral-answer"
    AMENDMENT = "amendment"
    DECLARATION_RECEIPT = "declaration-receipt"
    AGENCY_COPY = "agency-copy"

    @property
    def major(self) -> int:
        return 1

    @property
    def namespace(self) -> str:
        return f"urn:ead-connector:{self.value}:{self.major}"

    @property
    def file_name(self) -> str:
        return f"{self.value}-{self.major}.xsd"

    @property
    def root(self) -> str:
        """Local name of the root element."""
        return "".join(part.capitalize() for part in self.value.split("-"))

    @property
    def root_tag(self) -> str:
        return f"{{{self.namespace}}}{self.root}"

    @classmethod
    def of_root(cls, tag: str) -> MessageKind:
        """The kind whose root element is ``tag`` (Clark notation)."""
        for kind in cls:
            if kind.root_tag == tag:
                return kind
        raise MessageKindUnknown(f"root element {tag} is not a message this connector accepts")


def default_xsd_dir() -> Path:
    """The schema directory shipped with the package."""
    package = Path(__file__).resolve().parent.parent
    installed = package / "_xsd"
    if installed.is_dir():
        return installed
    return package.parent / "xsd"


@dataclass(frozen=True, slots=True)
class _Compiled:
    xmlschema: Any  # xmlschema.XMLSchema10 (untyped library)


_LXML_COMPILE_LOCK = threading.Lock()
"""Held while libxml2 compiles a schema, in any registry of the process."""


class SchemaRegistry:
    """Compiles each message schema once and hands out validators."""

    def __init__(self, xsd_dir: Path | None = None) -> None:
        self.xsd_dir = (xsd_dir or default_xsd_dir()).resolve()
        self._lock = threading.Lock()
        self._compiled: dict[MessageKind, _Compiled] = {}
        self._local = threading.local()

    def path(self, kind: MessageKind) -> Path:
        path = self.xsd_dir / kind.file_name
        if not path.is_file():
            raise ConfigurationError(f"schema file for {kind.value} not found: {path}")
        return path

    def xmlschema(self, kind: MessageKind) -> Any:
        """The xmlschema validator for ``kind`` (built once per process, thread-safe)."""
        compiled = self._compiled.get(kind)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(kind)
                if compiled is None:
                    import xmlschema  # only needed for error reports; slow to import

                    # allow="local": includes resolve from disk, never the network
                    # ("sandbox" would also refuse in-memory instances).
                    schema = xmlschema.XMLSchema10(
                        str(self.path(kind)), allow="local", defuse="always"
                    )
                    compiled = _Compiled(xmlschema=schema)
                    self._compiled[kind] = compiled
        return compiled.xmlschema

    def lxml(self, kind: MessageKind) -> etree.XMLSchema:
        """The lxml validator for ``kind``, one instance per thread."""
        cache: dict[MessageKind, etree.XMLSchema] | None = getattr(self._local, "lxml", None)
        if cache is None:
            cache = {}
            self._local.lxml = cache
        schema = cache.get(kind)
        if schema is None:
            parser = etree.XMLParser(
                resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False
            )
            # libxml2's schema compiler sets up process-wide built-in type tables and is not
            # safe in two threads at once (seen: every later compile and validation failed
            # with "not a built-in type"); compilations take turns, validations do not.
            with _LXML_COMPILE_LOCK:
                schema = etree.XMLSchema(etree.parse(str(self.path(kind)), parser))
            cache[kind] = schema
        return schema


_default: SchemaRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> SchemaRegistry:
    """The process-wide registry over the shipped schemas."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = SchemaRegistry()
    return _default
