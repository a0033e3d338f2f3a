"""Coordination between controllers: who may act (leadership, by shard or whole), with
what fencing token, through etcd or the journal's local locks (`choice`)."""
