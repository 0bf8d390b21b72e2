"""The ``ead-connector`` command line (also ``python -m connector``).

Exit codes of ``validate``: 0 every item of every file valid, 1 some item invalid, 2 a file
unreadable, unsafe or not a usable batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from connector import __version__
from connector.core.inbound import ValidationReport, validate_item_batch
from connector.core.xmlsafe import DEFAULT_LIMITS, check_size
from connector.errors import ConnectorError

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_UNUSABLE = 2


@dataclass(frozen=True, slots=True)
class FileVerdict:
    """What ``validate`` concluded about one file."""

    file: str
    report: ValidationReport | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def exit_code(self) -> int:
        if self.report is None:
            return EXIT_UNUSABLE
        return EXIT_OK if self.report.all_valid else EXIT_INVALID

    def as_dict(self) -> dict[str, object]:
        if self.report is None:
            return {
                "file": self.file,
                "status": "unusable",
                "error": {"code": self.error_code, "message": self.error_message},
            }
        report = self.report
        return {
            "file": self.file,
            "status": "valid" if report.all_valid else "invalid",
            "batch_id": report.header.batch_id,
            "operator_id": report.header.operator_id,
            "items": report.item_count,
            "accepted": len(report.accepted),
            "rejected": len(report.rejected_indexes),
            "errors": [error.as_dict() for error in report.errors],
        }


def validate_file(path: Path) -> FileVerdict:
    """Validate one file, turning every expected failure into a verdict."""
    name = str(path)
    try:
        check_size(path.stat().st_size, DEFAULT_LIMITS)
        data = path.read_bytes()
    except ConnectorError as exc:
        return FileVerdict(name, error_code=exc.code, error_message=exc.message)
    except OSError as exc:
        return FileVerdict(
            name, error_code="file_unreadable", error_message=exc.strerror or str(exc)
        )
    try:
        return FileVerdict(name, report=validate_item_batch(data))
    except ConnectorError as exc:
        return FileVerdict(name, error_code=exc.code, error_message=exc.message)


def _print_text(verdicts: Sequence[FileVerdict], out: TextIO) -> None:
    for verdict in verdicts:
        report = verdict.report
        if report is None:
            print(
                f"{verdict.file}: unusable ({verdict.error_code}): {verdict.error_message}",
                file=out,
            )
            continue
        rejected = len(report.rejected_indexes)
        print(
            f"{verdict.file}: batch {report.header.batch_id} from {report.header.operator_id}: "
            f"{report.item_count} items, {len(report.accepted)} accepted, {rejected} rejected",
            file=out,
        )
        for error in report.errors:
            print(
                f"  item {error.item_index} {error.item_id or '-'} {error.path}: "
                f"{error.code}: {error.message}",
                file=out,
            )


def _cmd_validate(args: argparse.Namespace) -> int:
    verdicts = [validate_file(Path(name)) for name in args.files]
    if args.format == "json":
        json.dump(
            {"files": [v.as_dict() for v in verdicts]}, sys.stdout, ensure_ascii=False, indent=1
        )
        sys.stdout.write("\n")
    else:
        _print_text(verdicts, sys.stdout)
    return max(verdict.exit_code for verdict in verdicts)


def _cmd_sample(args: argparse.Namespace) -> int:
    from connector.sample import generate_batch

    batch = generate_batch(
        args.items, invalid_ratio=args.invalid_ratio, seed=args.seed, operator_id=args.operator
    )
    Path(args.output).write_bytes(batch.xml)
    print(
        f"wrote {batch.item_count} items ({len(batch.faults)} with a seeded fault) "
        f"of batch {batch.batch_id} to {args.output}",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from connector.sample import generate_batch

    started = time.perf_counter()
    batch = generate_batch(args.items, invalid_ratio=args.invalid_ratio, seed=args.seed)
    generated = time.perf_counter()
    report = validate_item_batch(batch.xml)
    validated = time.perf_counter()
    codes = Counter(error.code for error in report.errors)
    seeded = {fault.index for fault in batch.faults}
    print(f"ead-connector {__version__} demo: sample batch {batch.batch_id}")
    print(
        f"  generated  {batch.item_count} items, {len(batch.xml) / 1e6:.1f} MB "
        f"in {generated - started:.2f} s ({len(seeded)} with a seeded fault)"
    )
    print(
        f"  validated  in {validated - generated:.3f} s "
        f"({batch.item_count / (validated - generated):,.0f} items/s)"
    )
    print(f"  accepted   {len(report.accepted)}")
    print(f"  rejected   {len(report.rejected_indexes)}")
    for code, count in codes.most_common():
        print(f"    {code:<28} {count}")
    if report.rejected_indexes != seeded:
        print("  MISMATCH: rejected items differ from the seeded faults", file=sys.stderr)
        return EXIT_INVALID
    print("  every seeded fault was found and every other item accepted")
    return EXIT_OK


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _items(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 10_000:
        raise argparse.ArgumentTypeError("must be between 1 and 10000")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ead-connector",
        description="Electronic advance data between postal operators and Customs.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = commands.add_parser("validate", help="validate item batch files")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--format", choices=("text", "json"), default="text")
    validate.set_defaults(handler=_cmd_validate)

    sample = commands.add_parser("sample", help="write a realistic sample item batch")
    sample.add_argument("--items", type=_items, required=True, metavar="N")
    sample.add_argument("--invalid-ratio", type=_ratio, default=0.0, metavar="R")
    sample.add_argument("--seed", type=int, default=0, metavar="S")
    sample.add_argument("--operator", default=None, metavar="ID")
    sample.add_argument("-o", "--output", required=True, metavar="FILE")
    sample.set_defaults(handler=_cmd_sample)

    demo = commands.add_parser("demo", help="generate a sample batch and validate it")
    demo.add_argument("--items", type=_items, default=1000, metavar="N")
    demo.add_argument("--seed", type=int, default=1, metavar="S")
    demo.add_argument("--invalid-ratio", type=_ratio, default=0.05, metavar="R")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.handler(args)
    return code
