"""The operations the triggers, the manual actions and the CLI call.

One ``Engine`` is one connection to one network. Each operation validates its input first
(unknown or foreign sites and users, bad ids, odd roles, broken options raise before any write),
then plans, then writes batch by batch.
"""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable, Iterable

from . import inputs, jobs, journal, memberships, options, outbox, removals, settings, throttle, unsync
from .config import Config
from .db import connect, transaction
from .journal import Change, UndoOutcome
from .memberships import Batch, Outcome
from .replication import replicate_role
from .roles import SiteRoles, load_site_roles
from .schema import REMOVED_META_KEY, Network

Progress = Callable[[int, int], None]  # (batches done, batches in all)


class Engine:
    """Sync operations on the network named by ``config``.

    ``trigger`` says who is asking (``hook:user_created``, ``manual``, ``cli:sync-all``…); the
    undo journal keeps it with every change. Each write operation is one change: its outcome's
    ``job_id`` is what ``undo`` takes."""

    def __init__(self, config: Config, conn: Any = None, trigger: str = "api") -> None:
        self.config = config
        self.trigger = trigger
        # Users whose outbox events are being applied right now (``delivery.deliver`` sets it).
        self.applying: frozenset[int] = frozenset()
        self.conn = conn if conn is not None else connect(config)
        self.network = Network.load(self.conn, config)
        self.network.options = options.read(self.conn, self.network)
        # Created here, not where rows are written: CREATE TABLE would commit a transaction.
        jobs.ensure_tables(self.conn, self.network)  # the journal's and the outbox's tables too

    @classmethod
    def writer(cls, config: Config, trigger: str = "queue") -> "Engine":
        """An engine for a queue batch: its connection first takes a writer slot
        (``throttle.take_slot``: at most ``WPMSYNC_MAX_PARALLEL_BATCHES`` at once, across every
        instance), held until it closes. ``throttle.NoSlot`` (connection closed) when none is
        free: nothing else was read."""
        conn = connect(config)
        try:
            throttle.take_slot(conn, config)
            return cls(config, conn=conn, trigger=trigger)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- 1. new user -------------------------------------------------------------------
    def add_user_to_all_sites(self, user_id: Any, *, force: bool = False,
                              dry_run: bool = False) -> Outcome:
        """New-user trigger: the user joins every live site (the main site included) where it is
        not a member yet, with each site's default role."""
        user = self.network.require_user(self.conn, user_id)
        outcome = Outcome(dry_run=dry_run)
        if user.super_admin:
            outcome.skip("super admins are never added as members", user_id=user.user_id)
            return outcome
        if user.spam or user.deleted:
            outcome.skip("user is flagged spam or deleted", user_id=user.user_id)
            return outcome
        blog_ids = [s.blog_id for s in self.network.live_sites()]
        return self._sync(blog_ids, force, dry_run, None, user.user_id, self._change("add_user"))

    # -- 2. new site -------------------------------------------------------------------
    def add_all_users_to_site(self, blog_id: Any, *, force: bool = False, dry_run: bool = False,
                              progress: Progress | None = None) -> Outcome:
        """New-site trigger (and one site's "pull in every network user")."""
        site = self.network.require_live_site(blog_id)
        return self._sync([site.blog_id], force, dry_run, progress, None, self._change("add_site"))

    # -- 3. sync from scratch / selected sites -----------------------------------------
    def sync_sites(self, blog_ids: Iterable[Any] | None = None, *, force: bool = False,
                   dry_run: bool = False, progress: Progress | None = None) -> Outcome:
        """Every selected site (``None``: every live site) receives every user not yet a member.
        Existing memberships and roles are never changed."""
        if blog_ids is None:
            ids = [s.blog_id for s in self.network.live_sites()]
        else:
            ids = memberships.require_blog_ids(self.network, blog_ids)
        return self._sync(ids, force, dry_run, progress, None, self._change("sync_sites"))

    def add_users_to_sites(self, user_ids: Iterable[Any], blog_ids: Iterable[Any], *,
                           force: bool = False, dry_run: bool = False) -> Outcome:
        """Bulk sync by hand: these users join these sites (existing memberships untouched)."""
        users = sorted({self.network.require_user(self.conn, u).user_id
                        for u in inputs.ids(user_ids, "user_ids", text=True)})
        sites = memberships.require_blog_ids(self.network, blog_ids)
        outcome = Outcome(dry_run=dry_run)
        change = self._change("users_sync")  # one change: one undo for the whole selection
        for user_id in users:  # a hand-picked list: one small batch per user
            outcome.merge(self._sync(sites, force, dry_run, None, user_id, change))
        return outcome

    def plan_batches(self, blog_ids: Iterable[int], *, force: bool = False) -> list[Batch]:
        """The batches of a sync (all its sites × one user-id range each), for a queue to run."""
        return memberships.make_batches(blog_ids, self.user_ranges(len(set(blog_ids))), force)

    def user_ranges(self, sites: int) -> list[tuple[int, int]]:
        """User-id ranges sized so a batch holds about ``batch_size`` memberships."""
        per_batch = memberships.users_per_batch(self.config.batch_size, sites)
        return memberships.user_ranges(self.conn, self.network, per_batch)

    def more_than_one_batch(self, blog_ids: list[int]) -> bool:
        """Whether a sync (or its plan) of these sites spans more than one batch: then it runs
        through the queue, not inside an HTTP request."""
        return len(self.user_ranges(len(blog_ids))) > 1

    def run_batch(self, batch: Batch, site_roles: dict[int, SiteRoles] | None = None,
                  record: Callable[[Any, Outcome, int, int | None], None] | None = None,
                  change: Change | None = None,
                  after_step: Callable[[Outcome], None] | None = None) -> Outcome:
        """One batch, written in steps of one transaction each, sized to commit within
        ``WPMSYNC_BATCH_SECONDS`` (``throttle.users_per_step``); running it twice writes nothing
        the second time. ``record(cursor, outcome, first_user, next_user)`` runs inside each
        step's transaction: the step began at ``first_user``, the next one starts at
        ``next_user`` (None after the last step): a job keeps its batch's progress there, so a
        redelivered message resumes. ``after_step`` gets each step's outcome after its commit
        (WordPress's cache cleaning). The rows are journaled under ``change``."""
        change = change or self._change("batch")
        sites = len(batch.blog_ids)
        if site_roles is None and sites > 1:  # read once for every step
            site_roles = load_site_roles(self.conn, self.network.tables, batch.blog_ids)
        outcome, first = Outcome(), batch.first_user
        while True:
            budget = throttle.users_per_step(self.config, sites)
            last, users = memberships.step_end(self.conn, self.network, first, batch.last_user, budget)
            following = last + 1 if last < batch.last_user else None
            step_record = None if record is None else \
                (lambda cur, done, first=first, following=following: record(cur, done, first, following))
            started = time.monotonic()
            step = memberships.apply_batch(self.conn, self.network, replace(batch, first_user=first, last_user=last),
                                           site_roles, step_record, change, self.applying)
            if users == budget:  # a step the pace sized (a short last one is mostly fixed cost)
                throttle.learn(self.config, users * sites, time.monotonic() - started)
            if after_step is not None:
                after_step(step)
            outcome.merge(step)
            # who was touched: one batch's worth (merge leaves it out: a sync of many batches
            # must not hold every user id), for the caller's cache cleaning
            outcome.touched_users |= step.touched_users
            outcome.touched_sites |= step.touched_sites
            outcome.touched_roles |= step.touched_roles
            if following is None:
                return outcome
            first = following

    def _change(self, operation: str) -> Change:
        """A new change for the journal: what was done, and who asked."""
        return Change.new(f"{operation} ({self.trigger})")

    def _sync(self, blog_ids: list[int], force: bool, dry_run: bool, progress: Progress | None,
              first_user: int | None = None, change: Change | None = None) -> Outcome:
        """Sync these sites for every user (or one user), batch by batch."""
        if first_user is not None:  # one user: one batch over all its sites
            ranges = [(first_user, first_user)]
        else:
            ranges = self.user_ranges(len(blog_ids))
        if dry_run:
            return memberships.preview(self.conn, self.network, blog_ids, ranges, force=force,
                                       progress=progress)
        site_roles = load_site_roles(self.conn, self.network.tables, blog_ids)  # once per job
        batches = memberships.make_batches(blog_ids, ranges, force)
        change = change or self._change("sync")
        outcomes = (self.run_batch(batch, site_roles, change=change) for batch in batches)
        if len(batches) == 1:  # the usual inline case: keep who was touched, for cache cleaning
            outcome = next(outcomes)
        else:
            outcome = Outcome()
            for done, batch_outcome in enumerate(outcomes, 1):
                outcome.merge(batch_outcome)
                if progress:
                    progress(done, len(batches))
        if progress and len(batches) == 1:
            progress(1, 1)
        return outcome

    # -- 4. role replication -----------------------------------------------------------
    def replicate_role(self, user_id: Any, role: Any, from_blog: Any, actor: Any = None, *,
                       dry_run: bool = False) -> Outcome:
        return replicate_role(self.conn, self.network, user_id, role, from_blog, actor,
                              dry_run=dry_run, change=self._change("role_sync"))

    # -- 6. settings -------------------------------------------------------------------
    def settings(self) -> dict[str, bool]:
        return settings.read(self.conn, self.network)

    def change_settings(self, **changes: Any) -> dict[str, bool]:
        return settings.write(self.conn, self.network, changes)

    def network_options(self) -> dict[str, Any]:
        return self.network.options.to_dict()

    def option_problems(self) -> list[str]:
        """What the stored options name but cannot apply (a deleted site, a role gone)."""
        return options.problems(self.conn, self.network)

    def change_network_options(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Per-site opt-out and role, role filters, the missing-role policy (see options.py)."""
        self.network.options = options.write(self.conn, self.network, changes)
        return self.network.options.to_dict()

    # -- unsync ---------------------------------------------------------------------------
    def remove_users(self, user_ids: Iterable[Any], blog_ids: Iterable[Any], *,
                     dry_run: bool = False) -> Outcome:
        """Take these users off these sites, as ``remove_user_from_blog()`` would, and remember it."""
        return unsync.remove_users(self.conn, self.network, user_ids, blog_ids, dry_run=dry_run,
                                   change=self._change("unsync"))

    # -- undo journal -------------------------------------------------------------------
    def undo(self, job_id: Any, *, dry_run: bool = False, change: Change | None = None,
             from_user: int = 0, max_ranges: int | None = None) -> UndoOutcome:
        """Put back the exact rows a change (a job, a hook, a manual action) replaced; memberships
        changed since are left alone and reported. See journal.py."""
        return journal.undo(self.conn, self.network, job_id, dry_run=dry_run, trigger=self.trigger,
                            rows_per_chunk=self.config.batch_size, change=change, from_user=from_user,
                            max_ranges=max_ranges)

    def register_undo(self, job_id: Any) -> Change:
        """A queued undo's change, registered now: the journal shows who asked for it while
        its messages run."""
        job_id = inputs.job_id(job_id)
        change = Change.undoing(job_id, self.trigger)
        with transaction(self.conn) as cur:
            journal.open_change(cur, self.network, change)
        return change

    def fits_one_request(self, job_id: Any) -> bool:
        """Whether undoing a change is at most one batch of rows (404 unknown, 409 still running)."""
        limit = self.config.batch_size
        return journal.rows_to_undo(self.conn, self.network, job_id, at_most=limit + 1) <= limit

    def outbox(self) -> dict[str, Any]:
        """WordPress's events not applied yet: how many, the oldest one's age, the last error."""
        return outbox.stats(self.conn, self.network)

    def journal(self, limit: int = 20) -> list[dict[str, Any]]:
        """The newest changes: job id, trigger, rows, undone by."""
        return journal.recent(self.conn, self.network, limit)

    # -- removals (recorded through hooks) -----------------------------------------------
    def record_removal(self, user_id: Any, blog_id: Any) -> list[int]:
        user = self.network.require_user(self.conn, user_id)
        site = self.network.require_site(blog_id)
        return removals.record(self.conn, self.network, user.user_id, site.blog_id,
                               self._change("removal_record"))

    def forget_removal(self, user_id: Any, blog_id: Any) -> list[int]:
        user = self.network.require_user(self.conn, user_id)
        site = self.network.require_site(blog_id)
        return removals.forget(self.conn, self.network, user.user_id, site.blog_id,
                               self._change("removal_record"))

    # -- 7. uninstall ------------------------------------------------------------------
    def uninstall(self) -> dict[str, Any]:
        """Remove our configuration and tables; never a user, a membership or a role."""
        tables = self.network.tables
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
                "AND table_name LIKE %s",
                (tables.prefix.replace("_", "\\_") + "wpmsync\\_%",),
            )
            own = sorted(r[0] for r in cur.fetchall())
        with transaction(self.conn) as cur:
            switches = settings.delete_all(cur, self.network) + options.delete(cur, self.network)
            records = cur.execute(f"DELETE FROM {tables.usermeta} WHERE meta_key = %s",
                                  (REMOVED_META_KEY,))
        with self.conn.cursor() as cur:
            for name in own:
                cur.execute(f"DROP TABLE IF EXISTS `{name}`")
        jobs.forget_tables()  # the next use creates them again
        journal.forget_tables()
        return {"settings_deleted": switches, "removal_records_deleted": records, "tables_dropped": own}

