"""What the forge's input fails with: not reachable now, or refused."""

from __future__ import annotations

from reconciler.errors import PermanentError, TemporaryError


class SourceUnavailable(TemporaryError, ConnectionError):
    """The forge could not be reached or did not answer within the deadline."""


class SourceRefused(PermanentError, ValueError):
    """The source answered, but with something the controller will not use."""
