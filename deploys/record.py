"""The host's record of what the reconciler manages there (see `state.managed`)."""

from __future__ import annotations

from deploys.service import put_file, typed_deploy
from state.layout import MANAGED_RECORD
from state.managed import Managed, render_record


@typed_deploy("Managed record")
def managed_record(managed: Managed) -> None:
    """Write the record (root-only: it names what runs here). Its directory is made by
    the first operation (`mkdir -p`, as root), so the record costs two operations."""
    put_file("managed record", render_record(managed), MANAGED_RECORD, "600", "root", "root")
