"""The host gateway: every read of a host and every command sent to one goes through
here, and comes back typed, bounded and escaped.

- transport: the SSH worker (`client`, `protocol` on the parent side; `worker`,
  `session`, `deploy_runner` on the child side, the only place gevent and pyinfra run)
  and plain ssh for small commands (`remote`, used only by `commands`, `witness`,
  `fencing`);
- facts: one host snapshot per round trip (`facts`: a script and a pure parser), health
  probes (`probes`), a repository's snapshots (`snapshots`), the backup's second opinion
  (`witness`), the fencing token (`fencing`);
- the typed result: `observation` (what a fleet is), built by `observe`, within what a
  review may touch (`review_scope`)."""
