"""The dashboard and `/metrics` of `reconcile watch --http ADDR`: read-only views of the
journal (the loop's last look at each service, runs, incidents, failover, the last DR
drill) and of the coordination store."""
