"""What the controller keeps on disk: the run journal (runs, events, incidents and the
outbox), the snapshot ledger and confirmations, suspension, the failover state, the
apply lock, and where the state file came from (`state_origin`)."""
