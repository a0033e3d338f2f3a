"""Coordination between controllers: who may act (leadership), with what fencing token,
and the state they share. `local` (one controller, the journal's locks) or `etcd`."""
