"""Drive a REAL WordPress installation (Debian's /usr/share/wordpress) from Python.

Every call runs ``php wpfixture/php/wp.php`` which boots WordPress core from
our own minimal config against the given database/table prefix and executes a
batch of operations with WordPress's own functions (``wpmu_create_blog``,
``wpmu_create_user``, ``add_user_to_blog``, ...). Booting WordPress costs
~0.1-0.3 s, so batch operations with :meth:`WordPress.batch` where it matters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import db as _db

__all__ = ["WordPress", "Batch", "Pending", "WordPressError", "PHP_SCRIPT", "DEFAULT_WP_PATH"]

PHP_SCRIPT = Path(__file__).resolve().parent / "php" / "wp.php"
#: The WordPress tree (a lane sets WPFIXTURE_WP_PATH; Debian 12's package by default).
DEFAULT_WP_PATH = os.environ.get("WPFIXTURE_WP_PATH", "").strip() or "/usr/share/wordpress"
DEFAULT_CAPS = ("read", "edit_posts", "manage_options", "promote_users")


class WordPressError(RuntimeError):
    """A WordPress batch failed.

    Attributes: ``op_index`` (index of the failing op or None), ``op`` (the op
    dict), ``results`` (results of the ops that completed), ``stderr``.
    """

    def __init__(
        self,
        message: str,
        *,
        op_index: int | None = None,
        op: Mapping[str, Any] | None = None,
        results: list[Any] | None = None,
        stderr: str = "",
    ) -> None:
        detail = message
        if op is not None:
            detail += f" [op #{op_index}: {json.dumps(op)[:300]}]"
        if stderr.strip():
            detail += "\n--- php stderr ---\n" + stderr.strip()[-4000:]
        super().__init__(detail)
        self.message = message
        self.op_index = op_index
        self.op = op
        self.results = results or []
        self.stderr = stderr


def _int_keys(d: Mapping[str, Any] | None) -> dict[int, Any]:
    return {int(k): v for k, v in (d or {}).items()}


def _post_read_back(res: dict[str, Any]) -> dict[str, Any]:
    """JSON object keys are strings; give read_back maps int keys."""
    blogs = _int_keys(res.get("blogs"))
    for entry in blogs.values():
        if entry and "members" in entry:
            entry["members"] = _int_keys(entry["members"])
    return {"users": _int_keys(res.get("users")), "blogs": blogs}


class Pending:
    """Placeholder for the result of an op queued in a :class:`Batch`."""

    __slots__ = ("_value", "_done", "_post", "op")

    def __init__(self, op: dict[str, Any], post: Callable[[Any], Any] | None) -> None:
        self.op = op
        self._post = post
        self._done = False
        self._value: Any = None

    def _set(self, raw: Any) -> None:
        self._value = self._post(raw) if self._post else raw
        self._done = True

    @property
    def value(self) -> Any:
        if not self._done:
            raise RuntimeError("batch has not been run yet")
        return self._value

    def __repr__(self) -> str:
        return f"Pending({self.op.get('op')}, done={self._done}, value={self._value!r})"


class _Ops:
    """The op vocabulary. Subclasses decide whether ops run now or are queued."""

    def _submit(self, op: dict[str, Any], post: Callable[[Any], Any] | None = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    # -- network / sites ------------------------------------------------
    def create_site(
        self,
        slug: str,
        title: str | None = None,
        *,
        network_id: int = 1,
        options: Mapping[str, Any] | None = None,
        user_id: int | None = None,
        **site_fields: Any,
    ) -> Any:
        """``wpmu_create_blog()`` at path ``/<slug>/`` of the network; returns the blog id.

        ``options`` become site options (e.g. ``{"default_role": "author"}``);
        ``site_fields`` may set public/archived/spam/deleted/mature/lang_id.
        ``user_id`` (default: the network's admin_user_id) becomes the site's
        administrator, exactly as in the network admin screen.
        """
        op: dict[str, Any] = {"op": "create_site", "slug": slug, "network_id": network_id}
        if title is not None:
            op["title"] = title
        if options:
            op["options"] = dict(options)
        if user_id is not None:
            op["user_id"] = user_id
        op.update(site_fields)
        return self._submit(op)

    def create_network(
        self,
        network_id: int,
        domain: str,
        path: str = "/",
        *,
        site_admins: Sequence[str] | None = None,
        title: str | None = None,
        admin_email: str | None = None,
        meta: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        """Second (third, ...) network in the same tables: ``populate_network()``
        (site row + sitemeta incl. ms_files_rewriting) and its main site via
        ``wp_insert_site()``. ``site_admins`` (logins) replaces the copied list.
        Returns ``{"network_id": N, "blog_id": main_site_id}``."""
        op: dict[str, Any] = {"op": "create_network", "network_id": network_id, "domain": domain, "path": path}
        if site_admins is not None:
            op["site_admins"] = list(site_admins)
        if title is not None:
            op["title"] = title
        if admin_email is not None:
            op["admin_email"] = admin_email
        if meta:
            op["meta"] = dict(meta)
        if options:
            op["options"] = dict(options)
        return self._submit(op)

    def update_site(self, blog_id: int, **fields: Any) -> Any:
        """``wp_update_site(blog_id, fields)`` (archived/spam/deleted/public/...)."""
        return self._submit({"op": "update_site", "blog_id": blog_id, "fields": fields})

    def update_blog_status(self, blog_id: int, **fields: Any) -> Any:
        """Legacy ``update_blog_status()`` for each field (fires archive_blog, make_spam_blog, ...)."""
        return self._submit({"op": "update_blog_status", "blog_id": blog_id, "fields": fields})

    def update_option(self, blog_id: int, name: str, value: Any) -> Any:
        """``switch_to_blog(blog_id); update_option(name, value)``."""
        return self._submit({"op": "update_option", "blog_id": blog_id, "name": name, "value": value})

    def delete_option(self, blog_id: int, name: str) -> Any:
        return self._submit({"op": "delete_option", "blog_id": blog_id, "name": name})

    def get_option(self, blog_id: int, name: str, default: Any = False) -> Any:
        return self._submit({"op": "get_option", "blog_id": blog_id, "name": name, "default": default})

    def add_role(
        self,
        blog_id: int,
        role: str,
        display_name: str | None = None,
        capabilities: Mapping[str, bool] | Sequence[str] | None = None,
    ) -> Any:
        """``add_role()`` on one site. ``capabilities``: dict cap->bool or list of caps."""
        caps: Any = {"read": True} if capabilities is None else (
            dict(capabilities) if isinstance(capabilities, Mapping) else list(capabilities)
        )
        return self._submit(
            {"op": "add_role", "blog_id": blog_id, "role": role, "display_name": display_name or role, "capabilities": caps}
        )

    def remove_role(self, blog_id: int, role: str) -> Any:
        return self._submit({"op": "remove_role", "blog_id": blog_id, "role": role})

    # -- users ----------------------------------------------------------
    def create_user(self, login: str, email: str | None = None, password: str | None = None) -> Any:
        """``wpmu_create_user()``; returns the user id. Default email ``<login>@example.test``."""
        op: dict[str, Any] = {"op": "create_user", "login": login}
        if email is not None:
            op["email"] = email
        if password is not None:
            op["password"] = password
        return self._submit(op)

    def create_users(
        self,
        prefix: str,
        count: int,
        *,
        start: int = 1,
        width: int = 0,
        email_domain: str = "example.test",
        password: str | None = None,
    ) -> Any:
        """``count`` users ``<prefix><start>..`` (zero-padded to ``width``); returns their ids."""
        op: dict[str, Any] = {
            "op": "create_users",
            "prefix": prefix,
            "count": count,
            "start": start,
            "width": width,
            "email_domain": email_domain,
        }
        if password is not None:
            op["password"] = password
        return self._submit(op)

    def add_user_to_blog(self, blog_id: int, user_id: int, role: str) -> Any:
        return self._submit({"op": "add_user_to_blog", "blog_id": blog_id, "user_id": user_id, "role": role})

    def remove_user_from_blog(self, user_id: int, blog_id: int, reassign: int = 0) -> Any:
        return self._submit({"op": "remove_user_from_blog", "user_id": user_id, "blog_id": blog_id, "reassign": reassign})

    def set_role(self, blog_id: int, user_id: int, role: str) -> Any:
        """``switch_to_blog(blog_id); (new WP_User(user_id))->set_role(role)``."""
        return self._submit({"op": "set_role", "blog_id": blog_id, "user_id": user_id, "role": role})

    def update_user(self, user_id: int, **fields: Any) -> Any:
        """spam -> ``wp_update_user(['spam'=>..])``; deleted -> direct users.deleted update;
        other fields -> ``wp_update_user()``."""
        return self._submit({"op": "update_user", "user_id": user_id, "fields": fields})

    def grant_super_admin(self, user_id: int, network_id: int = 1) -> Any:
        return self._submit({"op": "grant_super_admin", "user_id": user_id, "network_id": network_id})

    def revoke_super_admin(self, user_id: int, network_id: int = 1) -> Any:
        return self._submit({"op": "revoke_super_admin", "user_id": user_id, "network_id": network_id})

    # -- reference behaviour of the "WPM User Sync" PHP plugin ------------
    def sync_like_plugin(
        self,
        blog_ids: Iterable[int] | None = None,
        *,
        network_id: int = 1,
        user_ids: Iterable[int] | None = None,
    ) -> Any:
        """Sync from scratch like the plugin; returns the number of memberships added."""
        op: dict[str, Any] = {"op": "sync_like_plugin", "network_id": network_id}
        if blog_ids is not None:
            op["blog_ids"] = list(blog_ids)
        if user_ids is not None:
            op["user_ids"] = list(user_ids)
        return self._submit(op)

    def replicate_role_like_plugin(self, user_id: int, from_blog: int, role: str) -> Any:
        """Copy ``role`` to the user's other live sites of from_blog's network where
        the role exists (skip super admins / empty role). Returns changed blog ids."""
        return self._submit({"op": "replicate_role_like_plugin", "user_id": user_id, "from_blog": from_blog, "role": role})

    # -- observation ----------------------------------------------------
    def read_back(
        self,
        user_ids: Iterable[int] | None = None,
        blog_ids: Iterable[int] | None = None,
        *,
        caps: Sequence[str] = DEFAULT_CAPS,
        members: bool = True,
    ) -> Any:
        """What WordPress itself believes (after ``wp_cache_flush()``).

        Returns ``{"users": {uid: {login, spam, deleted, super_admin (network 1),
        super_admin_networks: [network ids whose site_admins list the login],
        primary_blog, blogs: [get_blogs_of_user(uid, true) ids]}}, "blogs": {bid: {network_id, path,
        archived, spam, deleted, default_role, roles: [role names], users:
        [get_users(blog_id) ids], members: {uid: {member: is_user_member_of_blog,
        roles: [...], caps: {cap: user_can}}}}}}`` with int keys.
        Default: all users and all blogs (``members=False`` skips the matrix).
        """
        op: dict[str, Any] = {"op": "read_back", "caps": list(caps), "members": members}
        if user_ids is not None:
            op["user_ids"] = list(user_ids)
        if blog_ids is not None:
            op["blog_ids"] = list(blog_ids)
        return self._submit(op, _post_read_back)

    def flush_cache(self) -> Any:
        return self._submit({"op": "flush_cache"})

    def eval(self, code: str, args: Any = None) -> Any:
        """Execute PHP ``code`` with WordPress booted; its ``return`` value comes back
        JSON-decoded. ``$args`` holds ``args``; ``$wpdb`` is in scope."""
        return self._submit({"op": "eval", "code": code, "args": args})


class WordPress(_Ops):
    """One WordPress (multisite) installation: a database + table prefix + domain.

    Every op method runs immediately in its own PHP process; use
    :meth:`batch` (or :meth:`run`) to run many ops in one process.
    """

    def __init__(
        self,
        db_name: str,
        prefix: str = "wp_",
        host: str | None = None,
        port: int | None = None,
        user: str | None = None,
        password: str | None = None,
        domain: str = "wp.test",
        *,
        php: str | None = None,
        wp_path: str | os.PathLike[str] = DEFAULT_WP_PATH,
        content_dir: str | os.PathLike[str] | None = None,
        timeout: float | None = 1800,
        debug: bool = False,
        transaction: bool = True,
    ) -> None:
        self.db_name = db_name
        self.prefix = prefix
        # Unset: the lane's server, from the environment (see wpfixture.db).
        self.host = _db.default_host() if host is None else host
        self.port = _db.default_port() if port is None else int(port)
        self.user = _db.default_user() if user is None else user
        self.password = _db.default_password() if password is None else password
        self.domain = domain
        self.php = php or os.environ.get("WPFIXTURE_PHP") or shutil.which("php") or "php"
        self.wp_path = str(wp_path)
        self.content_dir = str(content_dir) if content_dir else None
        self.timeout = timeout
        self.debug = debug
        #: run each batch with autocommit off + one COMMIT (same rows, ~2x faster)
        self.transaction = transaction
        #: stderr of the last PHP run (notices/warnings from WordPress)
        self.last_stderr = ""

    def __repr__(self) -> str:
        return f"WordPress(db_name={self.db_name!r}, prefix={self.prefix!r}, domain={self.domain!r})"

    # -- plumbing -------------------------------------------------------
    @property
    def db_kwargs(self) -> dict[str, Any]:
        """Connection kwargs for :mod:`wpfixture.db` helpers."""
        return {"host": self.host, "port": self.port, "user": self.user, "password": self.password}

    def connect(self, **kw: Any):
        """A pymysql connection to this installation's database."""
        return _db.connect(self.db_name, **self.db_kwargs, **kw)

    def query(self, sql: str, args: Any = None) -> list[tuple]:
        """Run SQL against this database. ``{p}`` in ``sql`` is replaced by the table prefix."""
        return _db.query(self.db_name, sql.replace("{p}", self.prefix), args, **self.db_kwargs)

    def request(self, ops: Sequence[Mapping[str, Any]], *, multisite: bool = True) -> dict[str, Any]:
        """The JSON document sent to wp.php."""
        req: dict[str, Any] = {
            "db": {
                "name": self.db_name,
                "user": self.user,
                "password": self.password,
                "host": self.host,
                "port": self.port,
                "prefix": self.prefix,
                "domain": self.domain,
                # TLS when the lane's server requires it (wp.php sets MYSQL_CLIENT_FLAGS).
                "ssl": _db.default_ssl_ca() is not None,
            },
            "multisite": multisite,
            "abspath": self.wp_path,
            "debug": self.debug,
            "transaction": self.transaction,
            "ops": [dict(o) for o in ops],
        }
        if self.content_dir:
            req["content_dir"] = self.content_dir
        return req

    def run(self, ops: Sequence[Mapping[str, Any]], *, multisite: bool = True) -> list[Any]:
        """Run raw op dicts in ONE PHP process; returns the list of results.

        Raises :class:`WordPressError` if any op fails (earlier ops stay applied).
        """
        ops = list(ops)
        if not ops:
            return []
        payload = json.dumps(self.request(ops, multisite=multisite))
        try:
            proc = subprocess.run(
                [self.php, "-d", "display_errors=stderr", str(PHP_SCRIPT)],
                input=payload,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise WordPressError(f"php binary not found ({self.php}); run scripts/setup.sh") from exc
        self.last_stderr = proc.stderr
        out = proc.stdout.strip()
        try:
            doc = json.loads(out.splitlines()[-1]) if out else None
        except (json.JSONDecodeError, IndexError):
            doc = None
        if not isinstance(doc, dict):
            raise WordPressError(
                f"wp.php exited {proc.returncode} without a JSON answer; stdout={out[:2000]!r}", stderr=proc.stderr
            )
        if "error" in doc or proc.returncode != 0:
            idx = doc.get("op_index")
            raise WordPressError(
                str(doc.get("error", f"exit status {proc.returncode}")),
                op_index=idx,
                op=ops[idx] if isinstance(idx, int) and 0 <= idx < len(ops) else None,
                results=doc.get("results"),
                stderr=proc.stderr,
            )
        return list(doc["results"])

    def _submit(self, op: dict[str, Any], post: Callable[[Any], Any] | None = None) -> Any:
        res = self.run([op])[0]
        return post(res) if post else res

    def batch(self) -> "Batch":
        """Queue ops and run them in one PHP process::

            with wp.batch() as b:
                s = b.create_site("alpha", options={"default_role": "author"})
                u = b.create_user("bob")
            s.value, u.value
        """
        return Batch(self)

    # -- installation -----------------------------------------------------
    def install_network(
        self,
        title: str = "Test Network",
        admin_user: str = "admin",
        admin_email: str = "admin@example.test",
        admin_password: str = "password",
        *,
        create_db: bool = False,
    ) -> dict[str, int]:
        """Install WordPress (``wp_install``) and turn it into a subdirectory network
        (``install_network`` + ``populate_network``), like wp-admin/network.php.
        Returns ``{"admin_user_id": 1, "network_id": 1, "blog_id": 1}``."""
        if create_db:
            _db.create_database(self.db_name, **self.db_kwargs)
        op = {
            "op": "install",
            "title": title,
            "admin_user": admin_user,
            "admin_email": admin_email,
            "admin_password": admin_password,
        }
        return self.run([op], multisite=False)[0]

    def is_installed(self) -> bool:
        """Whether this prefix's network tables exist in the database."""
        try:
            return self.prefix + "sitemeta" in self.tables()
        except Exception:  # noqa: BLE001 - e.g. the database does not exist
            return False

    def tables(self) -> list[str]:
        """Tables of this installation (name starts with the prefix)."""
        return _db.list_tables(self.db_name, self.prefix, **self.db_kwargs)

    def copy_to(self, dst_db: str) -> "WordPress":
        """Copy the whole database to ``dst_db``; returns a WordPress for the copy."""
        _db.copy_database(self.db_name, dst_db, **self.db_kwargs)
        return self.with_db(dst_db)

    def with_db(self, db_name: str) -> "WordPress":
        """Same settings, another database."""
        return WordPress(
            db_name,
            self.prefix,
            self.host,
            self.port,
            self.user,
            self.password,
            self.domain,
            php=self.php,
            wp_path=self.wp_path,
            content_dir=self.content_dir,
            timeout=self.timeout,
            debug=self.debug,
            transaction=self.transaction,
        )

    def drop(self) -> None:
        """Drop the whole database."""
        _db.drop_database(self.db_name, **self.db_kwargs)


class Batch(_Ops):
    """Collects ops; :meth:`run` (or leaving the ``with`` block) runs them in one PHP process."""

    def __init__(self, wp: WordPress) -> None:
        self.wp = wp
        self.ops: list[dict[str, Any]] = []
        self.pending: list[Pending] = []
        self.results: list[Any] | None = None

    def _submit(self, op: dict[str, Any], post: Callable[[Any], Any] | None = None) -> Pending:
        p = Pending(op, post)
        self.ops.append(op)
        self.pending.append(p)
        return p

    def add(self, op: Mapping[str, Any]) -> Pending:
        """Queue a raw op dict."""
        return self._submit(dict(op))

    def run(self) -> list[Any]:
        """Run the queued ops; returns their (post-processed) results. May be called once."""
        if self.results is not None:
            raise RuntimeError("batch already run")
        raw = self.wp.run(self.ops)
        for p, r in zip(self.pending, raw):
            p._set(r)
        self.results = [p.value for p in self.pending]
        return self.results

    def __len__(self) -> int:
        return len(self.ops)

    def __enter__(self) -> "Batch":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.results is None:
            self.run()
