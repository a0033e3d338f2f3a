"""The web views of `reconcile watch --http ADDR`: the dashboard, `/metrics`, `/healthz`
and `/readyz`, and the webhook's route. Read-only views of the journal and of the
coordination store, taken once per pass (`snapshot`)."""
