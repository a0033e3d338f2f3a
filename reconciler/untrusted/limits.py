"""How much of anything untrusted the controller reads: every bound on the size or the
count of what a host, a forge or a channel sends, in one module, each with the reason
for its value. A reader stops at the bound and refuses (or cuts, where it says so); it
never reads on. The state file's own bound is the spec's (`state.yaml_lines.MAX_BYTES`):
the forge's files are state files and templates, and share it."""

from __future__ import annotations

# HTTP (reconciler.untrusted.http): hosts' services, Gitea's API, channels, the webhook.
MAX_BODY_BYTES = 1 << 20  # a model list of a few thousand models; Gitea's 50 issues; a push
HEALTH_BODY_BYTES = 10 * 1024  # as the kubelet: what a check needs, the rest is not read

# A host's snapshot (reconciler.hosts.facts).
MAX_CONTENT_BYTES = 65536  # a managed file's content compared in full; larger: by hash
MAX_DROPINS = 100  # named in a plan; beyond, the directory is removed all the same

# A repository's listing (reconciler.hosts.snapshots).
# The newest snapshots of a policy's tag kept for the provenance check (retention keeps
# far fewer; a repository flooded by a host is read no further).
MAX_CLAIMS = 1000

# The forge's git (reconciler.forge).
TREE_FILES = 5000  # an exported commit holds at most this many files
TREE_BYTES = 64 << 20  # and this many bytes
PULL_BYTES = 32 << 20  # what fetching one pull request may add to the mirror
PULL_OBJECTS = 20_000  # and how many objects it may bring that the branch does not have
MAX_COMMITS = 10_000  # commits since the one in force, walked for signatures; more: refused
