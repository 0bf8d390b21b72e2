"""``ead-connector check``: is the local service ready? For container health checks.

It asks the running service's ``GET /readyz`` on loopback (the configured port, over HTTPS
when ``http.tls_cert`` is set; the certificate is not verified for this local probe, the
answer carries no secret) and exits 0 when it answers 200, 1 when it answers anything else
or not at all, 2 when the configuration cannot be read. One line on stdout says why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

from connector.errors import ConnectorError

__all__ = ["register"]

EXIT_READY = 0
EXIT_NOT_READY = 1
EXIT_UNUSABLE = 2


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``check`` to the CLI."""
    check = commands.add_parser("check", help="is the local service ready (for health checks)")
    check.add_argument("--config", metavar="FILE", help="config file (default: CONNECTOR_CONFIG)")
    check.add_argument("--url", help="probe this base URL instead of the configured port")
    check.add_argument("--timeout", type=float, default=5.0, metavar="S")
    check.set_defaults(handler=_cmd_check)


def _base_url(args: argparse.Namespace) -> str:
    from connector.settings import load_settings

    if args.url:
        return str(args.url).rstrip("/")
    settings = load_settings(Path(args.config) if args.config else None, os.environ)
    scheme = "https" if settings.http.tls_cert is not None else "http"
    return f"{scheme}://127.0.0.1:{settings.http.port}"


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        base = _base_url(args)
    except ConnectorError as exc:
        print(f"error ({exc.code}): {exc.message}", file=sys.stderr)
        return EXIT_UNUSABLE
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # loopback probe of our own service
    try:
        with urllib.request.urlopen(  # noqa: S310 - our own http(s) URL
            base + "/readyz", timeout=args.timeout, context=context
        ) as answer:
            body = json.loads(answer.read() or b"{}")
            print(f"ready: {json.dumps(body.get('checks', {}), sort_keys=True)}")
            return EXIT_READY
    except urllib.error.HTTPError as exc:
        detail = ""
        with contextlib.suppress(ValueError):
            detail = json.loads(exc.read() or b"{}").get("detail", "")
        print(f"not ready: HTTP {exc.code} {detail}".rstrip())
        return EXIT_NOT_READY
    except (OSError, ValueError) as exc:
        print(f"not ready: {base} does not answer ({type(exc).__name__})")
        return EXIT_NOT_READY
