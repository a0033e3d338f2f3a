"""Deploys that converge hosts: the work a plan implies, run through the SSH worker
(reconciler.hosts), the health gate after it, Ollama model pulls, backup repositories
initialised, and what an apply did (`result`). Other changes to hosts are moves
(reconciler.flows.moves), restores (reconciler.repositories) and the drill."""
