"""The errors the engine raises on purpose.

Every one carries a message meant for the operator (CLI) or the caller (HTTP answer); the
function layer maps the class to a status code. Anything else is a real fault.
"""
from __future__ import annotations


class WpmsyncError(Exception):
    """Base class: a clear, expected failure. ``status`` is the HTTP status it maps to."""

    status = 400

    def public_message(self) -> str:
        """What a caller over HTTP is told. A refusal says what was wrong; a fault of ours (5xx)
        says only what kind of fault it is: its detail (hosts, users, database names) goes to
        the log, under the correlation id the answer carries."""
        return str(self)


class ConfigError(WpmsyncError):
    """A missing or invalid setting (environment / app settings)."""

    status = 500

    def public_message(self) -> str:
        return "the functions' settings are incomplete or invalid; see the logs under the correlation id"


class Unreachable(ConfigError):
    """The WordPress database does not answer (down, wrong host, refused credentials)."""

    status = 503

    def public_message(self) -> str:
        return "the WordPress database cannot be reached; see the logs under the correlation id"


class InputError(WpmsyncError):
    """Bad input from the caller: non-numeric ids, odd role names, an empty selection.
    ``field`` names what was wrong (``user_ids[2]``, ``options.scope``) when one field was."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(WpmsyncError):
    """An unknown site or user, or one that belongs to another network."""

    status = 404


class QueueUnreachable(WpmsyncError):
    """The batch queue did not take a message: a job's first one (the job ended failed at once,
    holding no sites) or a queued undo's; the caller may try again."""

    status = 503

    def public_message(self) -> str:
        return ("the batch queue cannot be reached: nothing was queued (a job started for it ended failed "
                "and holds nothing); try again later (the logs have the detail under the correlation id)")


class BrokenOption(WpmsyncError):
    """A WordPress option (roles list, site_admins) that cannot be read safely."""

    status = 500


class Busy(WpmsyncError):
    """Another writer holds the lock of the same users too long; the operation wrote nothing."""

    status = 409


class Conflict(WpmsyncError):
    """A sync of the same sites is already queued or running."""

    status = 409


class Replayed(WpmsyncError):
    """A hook event refused before, delivered again: the first answer, status and body."""

    replayed = True

    def __init__(self, message: str, status: int, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class Unauthorized(WpmsyncError):
    """A hook callback without a valid signature, or outside the time window."""

    status = 401
