"""The `reconcile` command line: the parser (`parser`), one thin module per verb
(`*_command`), the exit-code contract, and the terminal. A verb parses, calls one flow
and prints what it returns (through reconciler.render); no wiring lives here."""
