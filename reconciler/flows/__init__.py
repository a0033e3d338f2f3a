"""One home per flow, each composing the pure engine with the gateways: a plan
(`plan.plan_for`, for dry run, review, apply, watch and status), one pass (`once`), a
journaled run (`lifecycle`), failover and its moves (`failover`, `moves`, `mover`,
`staging`, `leases`), the drill (`drill`), a review of a pull request (`review`),
scheduled verification (`verifications`), the incident desk and the outbox sender."""
