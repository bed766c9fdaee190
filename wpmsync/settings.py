"""The three network-level trigger switches, in ``{prefix}sitemeta``.

Stored under the PHP plugin's own keys and values (``yes`` when on, empty when off), so a network
moving from the plugin keeps its switches, and the plugin's screens would read ours.
"""
from __future__ import annotations

from typing import Any

from .db import SITEMETA_LOCK, named_locks, transaction
from .errors import InputError
from .schema import Network, update_meta

SWITCHES = {
    "new_user": "wpmus_newUserSync",
    "new_site": "wpmus_newSiteSync",
    "role_sync": "wpmus_setUserRoleSync",
}


def parse_switch(name: str, value: Any) -> bool:
    """Accept on/off, yes/no, true/false (CLI, HTTP JSON); anything else is a clear error."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("on", "yes", "true", "1"):
        return True
    if text in ("off", "no", "false", "0", ""):
        return False
    raise InputError(f"setting {name!r} must be on or off, got {value!r}", name)


def read(conn: Any, network: Network) -> dict[str, bool]:
    """The switches as booleans; missing rows mean off (all off until switched on)."""
    with conn.cursor() as cur:
        cur.execute(
            f"SELECT meta_key, meta_value FROM {network.tables.sitemeta} WHERE site_id = %s "
            f"AND meta_key IN (%s, %s, %s) ORDER BY meta_id",
            (network.config.network_id, *SWITCHES.values()),
        )
        stored: dict[str, str] = {}
        for key, value in cur.fetchall():
            stored.setdefault(key, value)  # get_site_option reads the first row
    return {name: stored.get(key) == "yes" for name, key in SWITCHES.items()}


def write(conn: Any, network: Network, changes: dict[str, Any]) -> dict[str, bool]:
    """Set some switches (``update_site_option`` semantics: one row per key); returns all three."""
    unknown = sorted(set(changes) - set(SWITCHES))
    if unknown:
        raise InputError(f"unknown setting(s): {', '.join(unknown)}; known: {', '.join(SWITCHES)}", unknown[0])
    values = {name: parse_switch(name, v) for name, v in changes.items()}
    with named_locks(conn, network.config, [SITEMETA_LOCK]), transaction(conn) as cur:
        for name, on in values.items():
            update_meta(cur, network.tables.sitemeta, "site_id", network.config.network_id,
                        SWITCHES[name], "yes" if on else "")
    return read(conn, network)


def delete_all(cur: Any, network: Network) -> int:
    """Uninstall: forget the switches of this network."""
    return cur.execute(
        f"DELETE FROM {network.tables.sitemeta} WHERE site_id = %s AND meta_key IN (%s, %s, %s)",
        (network.config.network_id, *SWITCHES.values()),
    )
