"""Events and the bus that hands them to sinks (the journal, JSON log lines, and the
notification channels to come). A failing sink never stops the others."""
