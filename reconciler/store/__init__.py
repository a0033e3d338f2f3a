"""What the controller keeps on disk: the run journal, the apply lock and the git
provenance of the state file."""
