"""`reconcile watch`: the level-based loop, the last good spec, backoff, scheduled
backup verification and systemd's notify protocol. Never loads gevent or pyinfra."""
