"""What the controller keeps on disk: the run journal (runs, events), incidents and the
outbox, the snapshot ledger and confirmations, the fleet's memory (suspension, source
holds), the failover state, the apply lock, and where the state file came from
(`state_origin`). With etcd, the memory, incidents and the outbox have a second backend
shared by every controller (reconciler.coordination.etcd_memory, etcd_incidents)."""
