"""wpfixture: real-WordPress fixtures for wpmsync tests, demo and benchmark.

Quick start::

    from wpfixture import build_network

    net = build_network("wpfx_demo", "wp_", sites=[{"slug": "a", "options": {"default_role": "author"}}], users=50)
    wp = net.wp
    wp.sync_like_plugin()                 # reference behaviour of the PHP plugin
    state = wp.read_back()                # what WordPress itself believes
    wp.drop()

WordPress core (Debian package ``wordpress``, /usr/share/wordpress) does all the
work through ``php wpfixture/php/wp.php``; see :mod:`wpfixture.wordpress`.
"""

from __future__ import annotations

from .db import (
    DBConfig,
    connect,
    copy_database,
    create_database,
    database_exists,
    drop_database,
    list_databases,
    list_tables,
    query,
)
from .network import BuiltNetwork, build_network, site_specs
from .wordpress import DEFAULT_WP_PATH, PHP_SCRIPT, Batch, Pending, WordPress, WordPressError

__all__ = [
    "WordPress",
    "Batch",
    "Pending",
    "WordPressError",
    "BuiltNetwork",
    "build_network",
    "site_specs",
    "DBConfig",
    "connect",
    "query",
    "create_database",
    "drop_database",
    "copy_database",
    "database_exists",
    "list_databases",
    "list_tables",
    "PHP_SCRIPT",
    "DEFAULT_WP_PATH",
]
