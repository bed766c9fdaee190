"""The session fixture ``azurite``: one Azurite queue service for the whole test session
(registered in conftest.py with ``pytest_plugins = ["azurite"]``)."""
from __future__ import annotations

import threading
from typing import Iterator

import pytest

from wpfixture.azurite import start_azurite, stop

_lock = threading.Lock()
_shared: dict[str, object] = {"users": 0, "proc": None, "conn": None}


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The connection string of a session-wide Azurite queue service."""
    with _lock:
        if _shared["proc"] is None:
            try:
                proc, conn = start_azurite(tmp_path_factory.mktemp("azurite"))
            except RuntimeError as exc:
                pytest.fail(str(exc), pytrace=False)
            _shared.update(proc=proc, conn=conn)
        _shared["users"] = int(_shared["users"]) + 1  # type: ignore[arg-type]
    try:
        yield str(_shared["conn"])
    finally:
        with _lock:
            _shared["users"] = int(_shared["users"]) - 1  # type: ignore[arg-type]
            if _shared["users"] == 0 and _shared["proc"] is not None:
                stop(_shared["proc"])  # type: ignore[arg-type]
                _shared.update(proc=None, conn=None)
