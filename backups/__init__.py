"""restic, behind one adapter: `restic_repo` (the only module that imports resticpy)
and `repository` (a policy's repository as the controller reaches it).

Imports only `state` of ours."""
