"""The ``keys``, ``sign`` and ``verify`` commands of ``ead-connector``.

``connector.cli.build_parser`` calls :func:`register` with its sub-parsers. Every handler
takes the parsed arguments and returns the exit code:

- ``keys generate|list|rotate`` and ``sign``: 0 done, 2 failed (the reason on stderr);
- ``verify``: 0 the signature is valid, 1 it is not (one line with the reason and its code),
  2 the input is unusable (unreadable file or certificate, unsafe or malformed XML).

The key passphrase comes only from ``CONNECTOR_KEY_PASSPHRASE`` and is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from connector.adapters import keystore
from connector.core import signing
from connector.core.xmlsafe import DEFAULT_LIMITS, check_size
from connector.errors import ConfigurationError, ConnectorError, SignatureInvalid

__all__ = ["PASSPHRASE_VARIABLE", "register"]

PASSPHRASE_VARIABLE: Final = "CONNECTOR_KEY_PASSPHRASE"  # noqa: S105 - a variable name
EXIT_OK: Final = 0
EXIT_INVALID: Final = 1
EXIT_UNUSABLE: Final = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``keys``, ``sign`` and ``verify`` to a command's sub-parsers."""
    keys = subparsers.add_parser("keys", help="signing keys: generate, list, rotate")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    generate = actions.add_parser(
        "generate",
        help=f"new key pair: DIR/key.pem (encrypted with ${PASSPHRASE_VARIABLE}) + DIR/cert.pem",
    )
    generate.add_argument("--kind", required=True, choices=[k.value for k in signing.KeyKind])
    generate.add_argument("--cn", required=True, metavar="NAME", help="certificate common name")
    generate.add_argument("--days", type=_days, default=365, metavar="D", help="default 365")
    generate.add_argument("--rsa-bits", type=int, choices=keystore.RSA_BITS, default=2048)
    generate.add_argument("--out", required=True, metavar="DIR")
    generate.set_defaults(handler=_cmd_generate)

    listing = actions.add_parser("list", help="the key pairs of a key ring and their state")
    listing.add_argument("--dir", required=True, metavar="DIR", help="key ring directory")
    listing.set_defaults(handler=_cmd_list)

    rotate = actions.add_parser(
        "rotate",
        help="make a new (or a given) key pair active; the old one stays published",
    )
    rotate.add_argument("--dir", required=True, metavar="DIR", help="key ring directory")
    rotate.add_argument("--kind", choices=[k.value for k in signing.KeyKind])
    rotate.add_argument("--cn", metavar="NAME", help="default: that of the active key")
    rotate.add_argument("--days", type=_days, default=365, metavar="D", help="default 365")
    rotate.add_argument("--rsa-bits", type=int, choices=keystore.RSA_BITS, default=2048)
    rotate.add_argument(
        "--to", metavar="KEY_ID", help="activate this existing (already published) key pair"
    )
    rotate.set_defaults(handler=_cmd_rotate)

    sign = subparsers.add_parser("sign", help="sign an XML document (enveloped XML-DSig)")
    sign.add_argument("file", metavar="FILE")
    sign.add_argument("-o", "--output", required=True, metavar="OUT")
    sign.add_argument("--key", metavar="KEY", help="encrypted PEM private key")
    sign.add_argument("--cert", metavar="CERT", help="its PEM certificate")
    sign.add_argument("--keys-dir", metavar="DIR", help="sign with the active key of a key ring")
    sign.set_defaults(handler=_cmd_sign)

    verify = subparsers.add_parser("verify", help="verify a signed XML document")
    verify.add_argument("file", metavar="FILE")
    verify.add_argument(
        "--cert",
        required=True,
        action="append",
        metavar="CERT",
        help="pinned signer certificate (PEM); repeat for a rotation overlap",
    )
    verify.add_argument(
        "--at", type=_instant, metavar="TIME", help="check certificate validity at TIME (ISO 8601)"
    )
    verify.set_defaults(handler=_cmd_verify)


def _days(text: str) -> int:
    value = int(text)
    if not 1 <= value <= keystore.MAX_DAYS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {keystore.MAX_DAYS}")
    return value


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("must be an ISO 8601 date and time") from exc
    return value if value.utcoffset() is not None else value.replace(tzinfo=UTC)


def _passphrase() -> bytes:
    """The key passphrase from the environment; never echoed anywhere."""
    value = os.environ.get(PASSPHRASE_VARIABLE)
    if not value:
        raise ConfigurationError(
            f"{PASSPHRASE_VARIABLE} is not set; it must hold the passphrase of the signing key "
            "files.",
            key=PASSPHRASE_VARIABLE,
        )
    return value.encode("utf-8")


def _fail(exc: ConnectorError | OSError) -> int:
    """Report why the command could not run (one line on stderr); exit code 2."""
    if isinstance(exc, OSError):
        where = exc.filename or "file"
        print(f"error (file_unreadable): {where}: {exc.strerror or exc}", file=sys.stderr)
    else:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
    return EXIT_UNUSABLE


def _read_document(name: str) -> bytes:
    """The file's bytes, refused before reading if it is larger than the parse limit."""
    path = Path(name)
    check_size(path.stat().st_size, DEFAULT_LIMITS)
    return path.read_bytes()


# --- keys -----------------------------------------------------------------------------------


def _cmd_generate(args: argparse.Namespace) -> int:
    try:
        passphrase = _passphrase()
        private_key, certificate = keystore.generate_key(
            args.kind, args.cn, args.days, rsa_bits=args.rsa_bits
        )
        out = Path(args.out)
        keystore.write_key_pair(out, private_key, certificate, passphrase)
    except ConnectorError as exc:
        return _fail(exc)
    key = signing.SigningKey(private_key, certificate)
    print(f"wrote {out / keystore.KEY_FILE} (encrypted) and {out / keystore.CERT_FILE}")
    print(f"  algorithm    {key.algorithm.name}")
    print(f"  fingerprint  sha256:{key.fingerprint}")
    print(f"  valid until  {certificate.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}")
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    try:
        entries = keystore.read_entries(Path(args.dir))
    except ConnectorError as exc:
        return _fail(exc)
    if not entries:
        print(f"no key pairs in {args.dir}")
        return EXIT_OK
    print(f"{'key id':<28} {'state':<10} {'algorithm':<13} {'not after':<21} {'days':>5}  sha256")
    for entry in entries:
        print(
            f"{entry.key_id:<28} {entry.state.value:<10} {entry.algorithm:<13} "
            f"{entry.not_after:%Y-%m-%dT%H:%M:%SZ}  {entry.days_left:>5}  {entry.fingerprint}"
        )
    return EXIT_OK


def _cmd_rotate(args: argparse.Namespace) -> int:
    directory = Path(args.dir)
    try:
        passphrase = _passphrase()
        if not (directory / keystore.ACTIVE_FILE).exists() and args.to is None:
            if args.kind is None or args.cn is None:
                raise ConfigurationError(
                    f"{directory} holds no key ring yet; give --kind and --cn for its first key.",
                    file=str(directory),
                )
            ring = keystore.KeyRing.create(
                directory, passphrase, args.kind, args.cn, args.days, rsa_bits=args.rsa_bits
            )
            previous = None
        else:
            ring = keystore.KeyRing.load(directory, passphrase)
            previous = ring.active_id
            if args.to is not None:
                ring.activate(args.to)
            else:
                ring.rotate(args.kind, args.cn, args.days, rsa_bits=args.rsa_bits)
    except ConnectorError as exc:
        return _fail(exc)
    key = ring.active
    print(f"active key is now {ring.active_id} ({key.algorithm.name}, sha256:{key.fingerprint})")
    if previous is not None and previous != ring.active_id:
        print(f"  {previous} stays published until its certificate expires")
    print(f"  publish: {directory / ring.active_id / keystore.CERT_FILE}")
    return EXIT_OK


# --- sign and verify ------------------------------------------------------------------------


def _signing_key(args: argparse.Namespace) -> signing.SigningKey:
    if args.keys_dir is not None:
        if args.key is not None or args.cert is not None:
            raise ConfigurationError("Give either --keys-dir or --key with --cert, not both.")
        return keystore.KeyRing.load(Path(args.keys_dir), _passphrase()).active
    if args.key is None or args.cert is None:
        raise ConfigurationError("Give --key KEY and --cert CERT (or --keys-dir DIR).")
    return keystore.load_signing_key(Path(args.key), Path(args.cert), _passphrase())


def _cmd_sign(args: argparse.Namespace) -> int:
    try:
        key = _signing_key(args)
        signed = signing.sign(_read_document(args.file), key)
        Path(args.output).write_bytes(signed)
    except (ConnectorError, OSError) as exc:
        return _fail(exc)
    print(
        f"signed {args.file} -> {args.output} with {key.algorithm.name} (sha256:{key.fingerprint})",
        file=sys.stderr,
    )
    return EXIT_OK


def _cmd_verify(args: argparse.Namespace) -> int:
    try:
        certificates = tuple(keystore.load_certificate(Path(name)) for name in args.cert)
        policy = signing.VerifyPolicy(certificates)
        data = _read_document(args.file)
    except (ConnectorError, OSError) as exc:
        return _fail(exc)
    try:
        result = signing.verify(data, policy, at=args.at)
    except SignatureInvalid as exc:
        print(f"{args.file}: invalid ({exc.code}): {exc.message}")
        return EXIT_INVALID
    except ConnectorError as exc:
        print(f"{args.file}: unusable ({exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_UNUSABLE
    print(f"{args.file}: valid, signed with {result.algorithm.name} by sha256:{result.fingerprint}")
    return EXIT_OK
