"""``ead-connector demo``: the whole flow on loopback ends with every accepted item's final
notice, and the database it leaves behind agrees with the summary."""

from __future__ import annotations

import json
import signal
import sqlite3
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.test_cli import run_cli


def _rows(table: str) -> dict[str, str]:
    rows = {}
    for line in table.splitlines():
        name, _, value = line.strip().partition("  ")
        rows[name.strip()] = value.strip()
    return rows


def test_demo_runs_the_whole_flow(tmp_path: Path) -> None:
    result = run_cli("demo", "--items", "300", "--seed", "5", "--workdir", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert result.stdout.rstrip().endswith("OK: every accepted item got its final notice")
    rows = _rows(result.stdout)
    accepted = int(rows["accepted"])
    assert int(rows["items sent by the operators"]) == 300
    assert accepted + int(rows["rejected"]) == 300
    assert 0 < int(rows["rejected"]) < 300  # seeded faults are rejected, the rest goes on
    assert rows["items with their final notice"] == f"{accepted} of {accepted}"
    assert int(rows["forwarded to Customs (signed)"]) == accepted
    for code in ("RELEASE", "HOLD", "DO_NOT_LOAD", "REQUEST_INFO", "REQUEST_SCREENING", "REJECTED"):
        assert int(rows[code]) > 0, code
    assert int(rows["referrals answered"]) == int(rows["REQUEST_INFO"]) + int(
        rows["REQUEST_SCREENING"]
    )

    with sqlite3.connect(tmp_path / "ead-connector.db") as db:
        states = dict(db.execute("SELECT state, count(*) FROM items GROUP BY state").fetchall())
        notices = db.execute("SELECT count(*) FROM notices").fetchone()[0]
        evidence = db.execute("SELECT count(*) FROM declarations").fetchone()[0]
    assert sum(states.values()) == accepted
    assert set(states) <= {"DECIDED", "NOTIFIED"}
    assert notices == int(rows["notices delivered (signatures verified)"])
    assert evidence > 0


def test_demo_keep_leaves_everything_running_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "connector", "demo", "--items", "50", "--keep"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120  # a hang guard, not a speed assertion
        info_file = tmp_path / "demo.json"
        while not info_file.exists():
            assert process.poll() is None, "the demo ended instead of staying up"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(0.2)
        info = json.loads(info_file.read_text())
        assert set(info) >= {
            "connector_url",
            "operators",
            "admin_token",
            "customs_url",
            "database_url",
            "connector_cert",
            "customs_cert",
        }
        context = ssl.create_default_context(cafile=info["ca_cert"])
        request = urllib.request.Request(
            info["connector_url"] + "/v1/admin/dead",
            headers={"Authorization": f"Bearer {info['admin_token']}"},
        )
        with urllib.request.urlopen(request, context=context, timeout=10) as answer:
            assert json.loads(answer.read())["count"] == 0
        base = info["connector_url"]
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(base + path, context=context, timeout=10) as answer:
                assert answer.status == 200
        metrics = urllib.request.Request(
            base + "/metrics", headers={"Authorization": f"Bearer {info['admin_token']}"}
        )
        with urllib.request.urlopen(metrics, context=context, timeout=10) as answer:
            text = answer.read().decode()
        families = {family.name for family in text_string_to_metric_families(text)}
        assert {"ead_items", "ead_outbox_pending", "ead_http_requests"} <= families
        for path in ("/v1/admin/dead", "/v1/admin/keys", "/metrics"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(base + path, context=context, timeout=10)
            assert refused.value.code == 401
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
        assert process.returncode == 0
        assert b"OK: every accepted item got its final notice" in out
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
