"""The `reconcile` command line: parser, one thin function per command, and all text
for people (plans, apply summaries, status tables). The only room that prints; the
rooms below return data and report progress through callbacks."""
