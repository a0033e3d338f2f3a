"""The pure core: the plan's vocabulary (`Change`), the diff per domain, the plan, failover
detection, snapshot judgement and incidents. Values in, values out: no SSH, no HTTP, no
journal."""
