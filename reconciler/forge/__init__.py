"""The desired state from the forge: a git source (more to come: webhooks, signatures, reviews)."""
