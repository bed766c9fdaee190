"""wpmsync: WordPress Multisite user synchronization, outside PHP, against the database.

Modules: ``config`` (settings), ``schema`` (prefixes, tables, the network), ``phpserial``
(PHP serialization), ``roles`` (roles and capabilities), ``memberships`` (set-based adds),
``replication`` (role sync), ``removals`` (remembered removals), ``settings`` (trigger switches),
``engine`` (the operations), ``cli`` (``python -m wpmsync``).
"""
from .config import Config
from .engine import Engine
from .errors import WpmsyncError

__all__ = ["Config", "Engine", "WpmsyncError"]
