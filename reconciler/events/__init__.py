"""Events: the bus that hands them to sinks (the journal, JSON log lines, the incident
desk), and the verification events the journal keeps. A failing sink never stops the
others."""
