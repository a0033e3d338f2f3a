"""The pure core: the plan's vocabulary (`Change`), the diff per domain, and the plan.

Values in, values out: no SSH, no HTTP, no journal. Failover's placement step
(spec plus failover state to the effective fleet) belongs here, before the diff."""
