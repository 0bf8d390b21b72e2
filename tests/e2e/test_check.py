"""``ead-connector check`` for container health checks: 0 ready, 1 not, 2 bad config."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.e2e.test_service import TOKEN, cli, free_port, service, wait_healthy, write_config


async def test_check_follows_the_service(tmp_path: Path) -> None:
    port = free_port()
    config = write_config(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", port)
    assert cli("db", "upgrade", "--config", str(config)).returncode == 0
    down = cli("check", "--config", str(config))
    assert down.returncode == 1
    assert "does not answer" in down.stdout
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        with service(config, tmp_path / "log.txt") as process:
            await wait_healthy(http, f"http://127.0.0.1:{port}", process)
            up = cli("check", "--config", str(config))
            assert up.returncode == 0, up.stdout + up.stderr
            assert up.stdout.startswith("ready: ")


def test_check_with_an_unreadable_config_is_2(tmp_path: Path) -> None:
    missing = cli("check", "--config", str(tmp_path / "none.toml"))
    assert missing.returncode == 2
    assert "configuration_invalid" in missing.stderr


@pytest.mark.parametrize("status", [503])
def test_check_reports_not_ready(tmp_path: Path, status: int) -> None:
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class NotReady(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"code": "not_ready", "detail": "not ready: keys"}'
            self.send_response(status)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = HTTPServer(("127.0.0.1", 0), NotReady)
    thread = Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        answer = cli("check", "--url", f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
    assert answer.returncode == 1
    assert "HTTP 503 not ready: keys" in answer.stdout
