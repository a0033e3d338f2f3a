"""Backup repositories from the controller: on-demand operations (list, now, forget,
restore), restores in place and rebuilds, copies, verification (check, drill), key
rotation, the fleet's backup key, and restorable snapshots. restic itself is driven
only through the top-level `backups` adapter."""
