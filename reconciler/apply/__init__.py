"""Apply a plan: the only room that changes hosts (deploys through the SSH worker,
the health gate, Ollama models, backup repositories and their secrets)."""
