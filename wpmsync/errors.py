"""The errors the engine raises on purpose.

Every one carries a message meant for the operator (CLI) or the caller (HTTP answer); the
function layer maps the class to a status code. Anything else is a real fault.
"""
from __future__ import annotations


class WpmsyncError(Exception):
    """Base class: a clear, expected failure. ``status`` is the HTTP status it maps to."""

    status = 400


class ConfigError(WpmsyncError):
    """A missing or invalid setting (environment / app settings)."""

    status = 500


class InputError(WpmsyncError):
    """Bad input from the caller: non-numeric ids, odd role names, an empty selection."""

    status = 400


class NotFound(WpmsyncError):
    """An unknown site or user, or one that belongs to another network."""

    status = 404


class BrokenOption(WpmsyncError):
    """A WordPress option (roles list, site_admins) that cannot be read safely."""

    status = 500


class Busy(WpmsyncError):
    """Another writer holds the lock of the same users too long; the operation wrote nothing."""

    status = 409


class Conflict(WpmsyncError):
    """A sync of the same sites is already queued or running."""

    status = 409


class Unauthorized(WpmsyncError):
    """A hook callback without a valid signature, or outside the time window."""

    status = 401
