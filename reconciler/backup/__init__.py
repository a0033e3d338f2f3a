"""Backups from the controller: the repository factory, on-demand operations (list,
now, forget, restore), verification (check, drill) and the fleet's backup key.
Everything restic goes through the `backups` adapter."""
