"""The desired state: pydantic models, the YAML loader and the JSON Schema.

Imports nothing else of ours; `reconciler`, `deploys` and `backups` build on it.
"""
