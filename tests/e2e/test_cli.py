"""The command line as a user runs it: ``python -m connector`` in a subprocess."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from connector.sample import FAULT_CODES, generate_batch

DATA = Path(__file__).parents[1] / "data"
ATTACKS = sorted((DATA / "attacks").glob("*.xml"))
MEMORY_CAP = 1024 * 1024 * 1024  # address space; a blow-up would hit it and fail the run
HANG_GUARD_S = 60  # not a speed assertion: it only stops a hung process


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        timeout=HANG_GUARD_S,
        cwd=cwd,
        preexec_fn=_limit_memory,
        check=False,
    )


def test_seeded_faults_are_reported_exactly(tmp_path: Path) -> None:
    out = tmp_path / "b.xml"
    made = run_cli(
        "sample", "--items", "1000", "--invalid-ratio", "0.1", "--seed", "7", "-o", str(out)
    )
    assert made.returncode == 0, made.stderr
    result = run_cli("validate", str(out), "--format", "json")
    assert result.returncode == 1, result.stderr
    (report,) = json.loads(result.stdout)["files"]
    expected = generate_batch(1000, invalid_ratio=0.1, seed=7)
    assert out.read_bytes() == expected.xml
    assert report["status"] == "invalid"
    assert report["items"] == 1000
    assert report["rejected"] == len(expected.faults) == 100
    assert report["accepted"] == 900
    by_item: dict[int, set[str]] = {}
    for error in report["errors"]:
        assert set(error) == {"item_index", "item_id", "path", "code", "message"}
        assert error["path"].startswith(f"/ItemBatch/Items/Item[{error['item_index'] + 1}]")
        assert error["message"]
        by_item.setdefault(error["item_index"], set()).add(error["code"])
    assert set(by_item) == {fault.index for fault in expected.faults}
    for fault in expected.faults:
        assert fault.code in by_item[fault.index], fault
    assert {fault.code for fault in expected.faults} == set(FAULT_CODES)


def test_valid_sample_exits_zero_with_text_report(tmp_path: Path) -> None:
    out = tmp_path / "ok.xml"
    assert run_cli("sample", "--items", "50", "--seed", "3", "-o", str(out)).returncode == 0
    result = run_cli("validate", str(out))
    assert result.returncode == 0, result.stdout
    assert "50 items, 50 accepted, 0 rejected" in result.stdout


@pytest.mark.parametrize("path", ATTACKS, ids=lambda p: p.name)
def test_attack_file_exits_2_with_one_line_reason(path: Path) -> None:
    result = run_cli("validate", str(path))
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}: unusable (")
    assert "Traceback" not in result.stderr


def test_oversize_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.xml"
    with big.open("wb") as handle:  # sparse: 200 MB on paper, nothing on disk
        handle.write(b"<ItemBatch>")
        handle.truncate(200 * 1024 * 1024)
    result = run_cli("validate", str(big), "--format", "json")
    assert result.returncode == 2
    (report,) = json.loads(result.stdout)["files"]
    assert report["status"] == "unusable"
    assert report["error"]["code"] == "xml_too_large"


def test_worst_exit_code_wins_across_files(tmp_path: Path) -> None:
    good = DATA / "valid" / "two_items.xml"
    bad = DATA / "invalid" / "s10_check_digit.xml"
    missing = tmp_path / "nope.xml"
    assert run_cli("validate", str(good), str(bad)).returncode == 1
    result = run_cli("validate", str(good), str(bad), str(missing), "--format", "json")
    assert result.returncode == 2
    statuses = [f["status"] for f in json.loads(result.stdout)["files"]]
    assert statuses == ["valid", "invalid", "unusable"]
    assert json.loads(result.stdout)["files"][2]["error"]["code"] == "file_unreadable"


def test_sample_is_deterministic_and_refuses_bad_arguments(tmp_path: Path) -> None:
    a, b = tmp_path / "a.xml", tmp_path / "b.xml"
    for out in (a, b):
        assert run_cli("sample", "--items", "20", "--seed", "11", "-o", str(out)).returncode == 0
    assert a.read_bytes() == b.read_bytes()
    refused = run_cli("sample", "--items", "0", "-o", str(a))
    assert refused.returncode == 2
    assert "between 1 and 10000" in refused.stderr
    refused = run_cli("sample", "--items", "5", "--invalid-ratio", "1.5", "-o", str(a))
    assert refused.returncode == 2


def test_python_dash_m_and_console_script_agree() -> None:
    version = run_cli("--version")
    assert version.returncode == 0
    assert version.stdout.startswith("ead-connector ")


def test_validate_with_checks_reports_findings_and_rejects_error_items() -> None:
    items = DATA / "checks" / "items.xml"
    plain = run_cli("validate", str(items), "--format", "json")
    assert plain.returncode == 0, plain.stdout  # schema- and rule-valid
    checked = run_cli("validate", str(items), "--checks", "all", "--format", "json")
    assert checked.returncode == 1
    (report,) = json.loads(checked.stdout)["files"]
    codes = {finding["code"] for finding in report["findings"]}
    assert {"party_denied", "hs_code_unknown", "description_vague", "article_prohibited"} <= codes
    errors = {f["item_index"] for f in report["findings"] if f["severity"] == "error"}
    assert report["rejected"] == len(errors) > 0
    assert report["accepted"] == report["items"] - len(errors)
    only_hs = run_cli("validate", str(items), "--checks", "hs", "--format", "json")
    (hs_report,) = json.loads(only_hs.stdout)["files"]
    assert {f["code"] for f in hs_report["findings"]} == {"hs_code_unknown"}
    unknown = run_cli("validate", str(items), "--checks", "spelling")
    assert unknown.returncode == 2
    assert "unknown_code" in unknown.stderr


def test_seeded_data_quality_problems_are_all_found(tmp_path: Path) -> None:
    from connector.core.checks.seeding import seed_check_problems

    out = tmp_path / "q.xml"
    made = run_cli(
        "sample", "--items", "2000", "--invalid-ratio", "0.05", "--check-problems", "0.02",
        "--seed", "11", "-o", str(out),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    batch = generate_batch(2000, invalid_ratio=0.05, seed=11)
    expected = seed_check_problems(
        batch.xml, ratio=0.02, seed=11, avoid={f.index for f in batch.faults}
    )
    assert out.read_bytes() == expected.xml
    assert len(expected.problems) == 40
    result = run_cli("validate", str(out), "--checks", "all", "--format", "json")
    assert result.returncode == 1
    (report,) = json.loads(result.stdout)["files"]
    found: dict[int, set[str]] = {}
    for finding in report["findings"]:
        found.setdefault(finding["item_index"], set()).add(finding["code"])
    for problem in expected.problems:
        assert problem.code in found.get(problem.index, set()), problem
