"""Where the forge's input enters, and nowhere else: the git mirror and what it exports
(`git_mirror`, `source`), signed commits (`signatures`), the webhook and its trust
decision (`webhook`), and Gitea's REST API (`gitea`). Everything here is untrusted:
bounded (reconciler.untrusted.limits), checked, and never run."""
