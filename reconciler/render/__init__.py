"""Pure renderers: plans, apply outcomes, status and history tables, backup standings,
the drill table, failover, the post-incident review, Markdown for the forge and SVG
charts. Shared by the CLI, the daemon, the web page and the forge; values in, text out."""
