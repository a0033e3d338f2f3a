"""`reconcile watch`, assembled (`assembly`, which names every background task): the
level-based loop, the last good spec, backoff, the forge desk, scheduled verification,
health and systemd's notify protocol. Never loads gevent or pyinfra."""
