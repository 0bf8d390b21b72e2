"""The processes of the end-to-end bench, all on loopback, and the operator that drives them.

- :class:`Credentials`: the loopback PKI, the connector's signing key ring and the mock
  Customs' key ring, made once per bench run;
- :class:`CustomsPeer`: ``python -m bench.customs_peer`` (HTTPS with mutual TLS, releases
  every item by callback), its own process and CPU, as a real Customs system is;
- :class:`ServiceProcess`: one ``ead-connector run`` (``python -m connector run``) with the
  configuration :func:`write_config` wrote: the shipped defaults except the bench's database,
  port, keys, operator and destination, no request rate limit and warning-level logs;
- :class:`Operator`: pushes 1,000-item batches (``POST /v1/batches``) from a few concurrent
  clients and reads the pull feed (``GET /v1/notices``) until every accepted item has its
  final notice, noting when each item was pushed and when its final notice was read.

Peak RSS and CPU time of a process come from ``/proc`` (Linux); elsewhere they are None.
With ``CONNECTOR_BENCH_PROFILE=DIR`` (and ``py-spy`` on the PATH or in the venv), every
service and mock Customs process is sampled by ``py-spy record --nonblocking`` into
``DIR/<name>-<pid>.txt`` (collapsed stacks, one ``frame;frame;... count`` per line), from
the moment it is up; ``CONNECTOR_BENCH_PROFILE_GIL=1`` samples only the thread holding the GIL.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from cryptography.hazmat.primitives import serialization

from connector.adapters.keystore import KeyRing
from connector.peers.tls import LoopbackPki
from connector.sample_data import DESTINATION_WEIGHT

OPERATOR: Final = "PL-POCZTA"
TOKEN: Final = "bench-operator-token-0123456789abcdef"
DESTINATION: Final = "EU-ICS2"
CONNECTOR_ID: Final = "EADC-BENCH"
PASSPHRASE: Final = "bench key passphrase"
FINAL: Final = frozenset({"RELEASE", "DO_NOT_LOAD", "REJECTED"})
#: A run that makes no progress for this long is stuck (a hang guard, not a measurement).
STALL_S: Final = 90.0
_TICKS: Final = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Profiler:
    """``py-spy record`` attached to one process, when ``CONNECTOR_BENCH_PROFILE`` is set."""

    def __init__(self, name: str, pid: int) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        directory = os.environ.get("CONNECTOR_BENCH_PROFILE")
        if not directory:
            return
        found = shutil.which("py-spy") or shutil.which(
            "py-spy", path=str(Path(sys.executable).parent)
        )
        if found is None:
            raise AssertionError("CONNECTOR_BENCH_PROFILE is set but py-spy is not installed")
        Path(directory).mkdir(parents=True, exist_ok=True)
        output = Path(directory) / f"{name}-{pid}.txt"
        command = [found, "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
        command += ["--nonblocking", "--output", str(output)]
        if os.environ.get("CONNECTOR_BENCH_PROFILE_GIL"):
            command.append("--gil")
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        """Stop sampling and let py-spy write its file."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set size (``VmHWM``) in MiB, None when unknown."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time the process used so far, None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def database_cpu_s(database: str) -> float | None:
    """CPU time of the PostgreSQL backends serving ``database`` (on this host), None when
    ``/proc`` cannot tell. A backend's process title names its database."""
    total, found = 0.0, False
    for entry in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if title.startswith("postgres:") and f" {database} " in title:
                used = cpu_seconds(int(entry.name))
                if used is not None:
                    total, found = total + used, True
    return total if found else None


def _used(start: float | None, end: float | None) -> float | None:
    return end - start if start is not None and end is not None else None


@dataclass(frozen=True)
class Credentials:
    """Keys and certificates shared by every scenario of one bench run."""

    directory: Path
    pki: LoopbackPki
    ring: KeyRing
    customs_keys: Path
    customs_pem: Path
    connector_pem: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def create(cls, directory: Path) -> Credentials:
        pki = LoopbackPki.create(directory / "pki")
        ring = KeyRing.create(directory / "keys", PASSPHRASE.encode(), "ec", CONNECTOR_ID, 30)
        customs = KeyRing.create(directory / "customs-keys", PASSPHRASE.encode(), "ec", "MC", 30)
        customs_pem = directory / "customs.pem"
        customs_pem.write_bytes(customs.active.certificate.public_bytes(serialization.Encoding.PEM))
        connector_pem = directory / "connector.pem"
        connector_pem.write_bytes(ring.active.certificate.public_bytes(serialization.Encoding.PEM))
        client = pki.issue_client("connector")
        return cls(
            directory,
            pki,
            ring,
            directory / "customs-keys",
            customs_pem,
            connector_pem,
            client.cert_file,
            client.key_file,
        )


def write_config(
    directory: Path, credentials: Credentials, database_url: str, customs_url: str
) -> Path:
    """The service's TOML: one pushing operator (pull feed), one Customs destination."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "op.token").write_text(TOKEN)
    countries = ", ".join(f'"{country}"' for country in sorted(DESTINATION_WEIGHT))
    config = directory / "connector.toml"
    config.write_text(
        f'connector_id = "{CONNECTOR_ID}"\nkey_passphrase = "{PASSPHRASE}"\n'
        f'[database]\nurl = "{database_url}"\n'
        "[http]\nrate_limit_per_second = 0\n"
        '[log]\nlevel = "warning"\n'
        f'[signing]\nkeys_dir = "{credentials.ring.directory}"\n'
        f'[[operators]]\nid = "{OPERATOR}"\ntoken_file = "op.token"\n'
        f'[[destinations]]\nid = "{DESTINATION}"\nurl = "{customs_url}"\n'
        f"countries = [{countries}]\n"
        f'certificates = ["{credentials.customs_pem}"]\nca_file = "{credentials.pki.ca_file}"\n'
        f'client_cert = "{credentials.client_cert}"\nclient_key = "{credentials.client_key}"\n'
    )
    return config


class CustomsPeer:
    """``python -m bench.customs_peer`` in a subprocess: start, then stop for its stats."""

    def __init__(self, credentials: Credentials, callbacks: Sequence[str], port: int) -> None:
        self.credentials = credentials
        self.callbacks = tuple(callbacks)
        self.port = port
        self.url = f"https://127.0.0.1:{port}/v1/declarations"
        self.process: asyncio.subprocess.Process | None = None
        self.cpu_s: float | None = None
        """CPU time used from READY to :meth:`stop` (start-up left out)."""
        self.profiler: Profiler | None = None
        self._cpu_start: float | None = None

    async def start(self) -> None:
        credentials = self.credentials
        arguments = [
            "--pki",
            str(credentials.pki.directory),
            "--keys",
            str(credentials.customs_keys),
            "--trust",
            str(credentials.connector_pem),
            "--destination",
            DESTINATION,
            "--port",
            str(self.port),
        ]
        for callback in self.callbacks:
            arguments += ["--callback", callback]
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.customs_peer",
            *arguments,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "MOCK_CUSTOMS_PASSPHRASE": PASSPHRASE},
        )
        assert self.process.stdout is not None
        line = (await asyncio.wait_for(self.process.stdout.readline(), 60)).decode().split()
        if line[:1] != ["READY"]:
            raise AssertionError(f"the mock Customs did not start: {line}")
        self.profiler = Profiler("customs", self.process.pid)
        self._cpu_start = cpu_seconds(self.process.pid)

    async def stop(self) -> dict[str, Any]:
        """Stop it; its STATS (empty when it printed none)."""
        process = self.process
        if process is None:
            return {}
        self.process = None
        if self.profiler is not None:
            self.profiler.stop()
        if process.returncode is None:
            self.cpu_s = _used(self._cpu_start, cpu_seconds(process.pid))
            process.terminate()
        try:
            output = (await asyncio.wait_for(process.communicate(), 30))[0].decode()
        except TimeoutError:
            process.kill()
            await process.wait()
            return {"error": "the mock Customs did not stop within 30 s; killed"}
        return json.loads(output.split("STATS ", 1)[1]) if "STATS " in output else {}


@dataclass
class ServiceProcess:
    """One ``ead-connector run`` process on ``port``."""

    config: Path
    port: int
    log: Path
    role: str = "all"
    process: subprocess.Popen[bytes] | None = None
    peak_rss_mb: float | None = None
    cpu_s: float | None = None
    """CPU time used from healthy to :meth:`sample` or :meth:`stop` (start-up left out)."""
    profiler: Profiler | None = None
    _cpu_start: float | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "CONNECTOR_HTTP__PORT": str(self.port)}
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "connector",
                    "run",
                    "--config",
                    str(self.config),
                    "--role",
                    self.role,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=env,
            )

    async def wait_healthy(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 90  # a hang guard, not a speed assertion
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise AssertionError(f"the service exited; see {self.log}:\n{self.tail()}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{self.base}/healthz") as response:
                    if response.status == 200:
                        # Counted from now on: the start-up is not what the bench measures.
                        self._cpu_start = cpu_seconds(self.process.pid)
                        self.profiler = Profiler(f"service-{self.role}", self.process.pid)
                        return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the service did not become healthy; see {self.log}")

    def sample(self) -> None:
        """Note the peak RSS and CPU time so far (call before :meth:`stop`)."""
        if self.process is not None and self.process.poll() is None:
            self.peak_rss_mb = peak_rss_mb(self.process.pid)
            self.cpu_s = _used(self._cpu_start, cpu_seconds(self.process.pid))

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if self.profiler is not None:
            self.profiler.stop()
        if process.poll() is None:
            self.peak_rss_mb = peak_rss_mb(process.pid) or self.peak_rss_mb
            self.cpu_s = _used(self._cpu_start, cpu_seconds(process.pid)) or self.cpu_s
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait(timeout=30)

    def tail(self) -> str:
        """The end of the service's log."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""


@dataclass
class Operator:
    """The postal operator: pushes batches to the replicas in turn and reads the feed."""

    bases: Sequence[str]
    poll_s: float = 0.05
    stall_s: float = STALL_S
    sent_at: dict[str, float] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    rejected: int = 0
    final_at: dict[str, float] = field(default_factory=dict)
    notices: int = 0
    first_push: float | None = None
    last_final: float | None = None
    _http: aiohttp.ClientSession | None = None
    _turn: Iterable[int] = field(default_factory=itertools.count)

    async def __aenter__(self) -> Operator:
        self._http = aiohttp.ClientSession(
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=aiohttp.ClientTimeout(total=300),
            connector=aiohttp.TCPConnector(limit=64),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._http is not None:
            await self._http.close()

    @property
    def http(self) -> aiohttp.ClientSession:
        assert self._http is not None, "use the operator as an async context manager"
        return self._http

    async def push(self, data: bytes, item_ids: Sequence[str], replica: int) -> None:
        """Push one batch to replica ``replica``; note its items' send time and verdicts."""
        now = time.monotonic()
        if self.first_push is None:
            self.first_push = now
        for item_id in item_ids:
            self.sent_at.setdefault(item_id, now)
        base = self.bases[replica % len(self.bases)]
        async with self.http.post(
            f"{base}/v1/batches",
            data=data,
            headers={"Content-Type": "application/xml", "Accept": "application/json"},
        ) as response:
            if response.status != 200:
                raise AssertionError(f"push refused: {response.status} {await response.text()}")
            ack = await response.json()
        for item in ack["items"]:
            if item["status"] == "accepted":
                self.accepted.add(item["item_id"])
            else:
                self.rejected += 1

    async def push_all(self, batches: Sequence[Batch], clients: int) -> None:
        """Push every batch, ``clients`` requests at a time, each client to its own replica."""
        queue = list(reversed(batches))

        async def client(number: int) -> None:
            while queue:
                batch = queue.pop()
                await self.push(batch.xml, batch.item_ids, number)

        await asyncio.gather(*(client(n) for n in range(clients)))

    async def read_feed(self, done: asyncio.Event) -> None:
        """Read the notice feed until ``done`` is set, noting each item's final notice."""
        cursor = "0"
        url = f"{self.bases[0]}/v1/notices"
        while not done.is_set():
            async with self.http.get(
                url,
                params={"after": cursor, "limit": "1000"},
                headers={"Accept": "application/json"},
            ) as response:
                if response.status != 200:
                    raise AssertionError(f"feed failed: {response.status} {await response.text()}")
                page = await response.json()
            now = time.monotonic()
            for entry in page["notices"]:
                self.notices += 1
                if entry["decision"] in FINAL and entry["item_id"] not in self.final_at:
                    self.final_at[entry["item_id"]] = now
                    self.last_final = now
            cursor = page["next_cursor"]
            if len(page["notices"]) < 1000:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), self.poll_s)

    def finished(self) -> bool:
        return bool(self.accepted) and self.accepted <= self.final_at.keys()

    async def wait_final(self, pushing: asyncio.Task[None]) -> None:
        """Until the pushes are done and every accepted item has its final notice."""
        progress, since = -1, time.monotonic()
        while not (pushing.done() and self.finished()):
            if pushing.done() and pushing.exception() is not None:
                raise pushing.exception()  # type: ignore[misc]
            seen = len(self.final_at) + len(self.accepted)
            if seen != progress:
                progress, since = seen, time.monotonic()
            elif time.monotonic() - since > self.stall_s:
                missing = len(self.accepted - self.final_at.keys())
                raise AssertionError(
                    f"no progress for {self.stall_s:.0f} s: {missing} of {len(self.accepted)} "
                    "accepted items have no final notice"
                )
            await asyncio.sleep(0.02)
        await pushing

    def latencies_s(self) -> list[float]:
        """Push to final notice, per accepted item, sorted."""
        return sorted(
            self.final_at[item] - self.sent_at[item]
            for item in self.accepted
            if item in self.final_at and item in self.sent_at
        )


@dataclass(frozen=True)
class Batch:
    """One generated item batch and its item ids."""

    xml: bytes
    item_ids: tuple[str, ...]


def item_ids_of(xml: bytes) -> tuple[str, ...]:
    """The ItemIds of a generated batch, in order (our own data: a plain scan)."""
    ids: list[str] = []
    start = 0
    while True:
        start = xml.find(b"<ItemId>", start)
        if start < 0:
            return tuple(ids)
        end = xml.find(b"</ItemId>", start)
        ids.append(xml[start + 8 : end].decode())
        start = end


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def env_database_url(environ: Mapping[str, str]) -> str | None:
    """The PostgreSQL server to bench on: CONNECTOR_BENCH_DATABASE_URL, else the tests' one."""
    return (
        environ.get("CONNECTOR_BENCH_DATABASE_URL")
        or environ.get("CONNECTOR_TEST_DATABASE_URL")
        or None
    )
