"""The three network-level trigger switches, in ``{prefix}sitemeta``.

Stored under the PHP plugin's own keys and values (``yes`` when on, empty when off), so a network
moving from the plugin keeps its switches, and the plugin's screens would read ours.
"""
from __future__ import annotations

from typing import Any

from . import inputs
from .db import SITEMETA_LOCK, named_locks, transaction
from .schema import Network, update_meta

SWITCHES = {
    "new_user": "wpmus_newUserSync",
    "new_site": "wpmus_newSiteSync",
    "role_sync": "wpmus_setUserRoleSync",
}


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
    """Set some switches, each ``True`` or ``False`` (``update_site_option`` semantics: one row
    per key); returns all three."""
    inputs.obj(changes, "settings", SWITCHES)
    values = {name: inputs.boolean(v, name) for name, v in changes.items()}
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
