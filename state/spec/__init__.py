"""The desired state as pydantic models, one module per section of the state file
(`fleet` is the root)."""
