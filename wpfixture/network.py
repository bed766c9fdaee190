"""Build a whole WordPress network fixture in two PHP processes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

from . import db as _db
from .wordpress import WordPress

__all__ = ["BuiltNetwork", "build_network", "site_specs"]


@dataclass
class BuiltNetwork:
    """What :func:`build_network` made."""

    wp: WordPress
    admin_user_id: int
    #: blog ids of the created sites, in the order of the ``sites`` argument
    site_ids: list[int]
    #: ids of the created users (``<user_prefix>1`` .. ``<user_prefix>N``)
    user_ids: list[int]
    #: network id -> main site blog id (1 -> 1 always)
    networks: dict[int, int] = field(default_factory=lambda: {1: 1})
    #: memberships added by ``sync=True`` (None if not synced)
    synced: int | None = None
    #: seconds spent in (install, populate) PHP processes
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def all_site_ids(self) -> list[int]:
        """Main sites of all networks + created sites, sorted."""
        return sorted(set(self.networks.values()) | set(self.site_ids))


def site_specs(n: int, *, slug_prefix: str = "site", default_roles: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``n`` site specs ``site1..siteN``; ``default_roles`` cycles over the sites
    (e.g. ``["subscriber", "author", "editor"]``)."""
    specs: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        spec: dict[str, Any] = {"slug": f"{slug_prefix}{i}", "title": f"Site {i}"}
        if default_roles:
            spec["options"] = {"default_role": default_roles[(i - 1) % len(default_roles)]}
        specs.append(spec)
    return specs


def build_network(
    db_name: str,
    prefix: str = "wp_",
    sites: Sequence[Mapping[str, Any]] | int = (),
    users: int = 0,
    *,
    user_prefix: str = "user",
    user_width: int = 0,
    networks: Iterable[Mapping[str, Any]] = (),
    sync: bool = False,
    extra_ops: Sequence[Mapping[str, Any]] = (),
    domain: str = "wp.test",
    title: str = "Test Network",
    admin_user: str = "admin",
    admin_email: str = "admin@example.test",
    admin_password: str = "password",
    create_db: bool = True,
    host: str | None = None,
    port: int | None = None,
    user: str | None = None,
    password: str | None = None,
    **wp_kwargs: Any,
) -> BuiltNetwork:
    """Create a fresh network with real WordPress core, in two PHP processes.

    1. ``wp_install`` + ``install_network`` + ``populate_network`` (single-site boot);
    2. multisite boot: ``create_network`` for each of ``networks`` (dicts with
       network_id, domain, path, site_admins...), ``wpmu_create_blog`` for each
       of ``sites`` (dicts: slug, title, options, network_id, archived, ...; or an
       int n for ``site1..siteN``), ``wpmu_create_user`` x ``users``
       (logins ``<user_prefix><i>``), then optionally ``sync_like_plugin`` on
       network 1 (and the extra networks) and ``extra_ops``.

    ``create_db`` drops and recreates the database first; with ``create_db=False``
    a database that already holds other prefixes can be reused.
    """
    wp = WordPress(db_name, prefix, host, port, user, password, domain, **wp_kwargs)
    if create_db:
        _db.create_database(db_name, **wp.db_kwargs)
    if isinstance(sites, int):
        sites = site_specs(sites)

    t0 = time.perf_counter()
    installed = wp.install_network(title, admin_user, admin_email, admin_password)
    t1 = time.perf_counter()

    net_specs = [dict(n) for n in networks]
    with wp.batch() as b:
        net_p = [b.add({"op": "create_network", **n}) for n in net_specs]
        site_p = []
        for s in sites:
            op = {"op": "create_site", **s}
            if "slug" not in op:
                raise ValueError(f"site spec without slug: {s!r}")
            site_p.append(b.add(op))
        users_p = b.create_users(user_prefix, users, width=user_width) if users else None
        sync_p = []
        if sync:
            sync_p.append(b.sync_like_plugin(network_id=1))
            for n in net_specs:
                sync_p.append(b.sync_like_plugin(network_id=int(n["network_id"])))
        for op in extra_ops:
            b.add(op)
    t2 = time.perf_counter()

    nets = {1: 1}
    for p in net_p:
        nets[int(p.value["network_id"])] = int(p.value["blog_id"])
    return BuiltNetwork(
        wp=wp,
        admin_user_id=int(installed["admin_user_id"]),
        site_ids=[int(p.value) for p in site_p],
        user_ids=[int(i) for i in users_p.value] if users_p else [],
        networks=nets,
        synced=sum(int(p.value) for p in sync_p) if sync else None,
        timings={"install": t1 - t0, "populate": t2 - t1},
    )
