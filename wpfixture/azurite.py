"""Azurite (the Azure Storage emulator): its queue service on a free local port, for the
tests and the demo.

``scripts/setup.sh`` installs it from npm into ``.tools/``. ``start_azurite(tmpdir)`` starts
``azurite-queue`` with in-memory storage and returns (process, connection string); ``stop``
ends it.
"""
from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_QUEUE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-queue"
DEV_ACCOUNT = "devstoreaccount1"
DEV_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
START_TIMEOUT = 30.0


def connection_string(port: int, host: str = "127.0.0.1") -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_ACCOUNT_KEY};"
        f"QueueEndpoint=http://{host}:{port}/{DEV_ACCOUNT};"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_azurite(tmpdir: str | os.PathLike) -> tuple[subprocess.Popen, str]:
    """Start azurite-queue (in-memory) on a free port; wait until it accepts connections.

    ``tmpdir`` is its working directory and holds its output (``azurite.log``). Azurite refuses
    ``--location`` together with ``--inMemoryPersistence``, so the workspace is the cwd instead.
    """
    if not AZURITE_QUEUE.exists():
        raise RuntimeError(f"{AZURITE_QUEUE} is missing: run `bash scripts/setup.sh`")
    tmp = Path(tmpdir)
    tmp.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for _attempt in range(3):  # the free port may be taken between probe and bind: retry
        port = _free_port()
        log_path = tmp / "azurite.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                [str(AZURITE_QUEUE), "--queueHost", "127.0.0.1", "--queuePort", str(port),
                 "--skipApiVersionCheck", "--inMemoryPersistence", "--silent", "--disableTelemetry"],
                cwd=tmp, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if _accepts(port):
                return proc, connection_string(port)
            time.sleep(0.1)
        stop(proc)
        last_error = log_path.read_text(errors="replace")[-2000:]
        if proc.returncode is not None and "EADDRINUSE" not in last_error:
            break
    raise RuntimeError(f"Azurite did not start within {START_TIMEOUT:.0f} s:\n{last_error}")


def stop(proc: subprocess.Popen) -> None:
    """Terminate Azurite (kill after 10 s)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
