"""Observe the fleet, read-only: host snapshots through the SSH worker, health probes
and model listings over HTTP, and the typed observation the diff consumes."""
