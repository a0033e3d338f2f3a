"""One reconcile run: observe, diff, plan; then apply, verify and journal the run's
lifecycle (started, finished, crashed). Used alike by the CLI and the daemon."""
