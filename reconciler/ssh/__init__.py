"""Everything that talks SSH through pyinfra, and both sides of the worker protocol.

The parent side (`client`, `protocol`) is import-light; the child side (`worker`,
`session`, `deploy_runner`, `facts`) is the only place gevent and pyinfra's API run."""
