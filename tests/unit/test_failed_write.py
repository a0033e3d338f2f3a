"""Which restic errors count as a refused write (then the repository disk's space is reported)."""

import pytest

from reconciler.repositories.operations import is_failed_write


@pytest.mark.parametrize(
    "error",
    [
        'Fatal: unable to save snapshot: sftp: "Failure" (SSH_FX_FAILURE)',
        "Fatal: unable to save snapshot: server response unexpected: 403 Forbidden",
        "Save(<data/1a2b3c4d5e>) returned error, retrying after 720ms: write: no space left",
        "Fatal: unable to create lock in backend: Save(<lock/8d1e>) failed",
        "open /srv/restic/small/data/ab/x: no space left on device",
    ],
)
def test_restics_words_for_a_full_disk_are_failed_writes(error: str) -> None:
    assert is_failed_write(error)


@pytest.mark.parametrize(
    "error",
    [
        "Fatal: wrong password or no key found",
        "ssh: connect to host 198.18.0.3 port 22: Connection refused",
        "Fatal: repository does not exist: unable to open config file",
    ],
)
def test_other_failures_are_not(error: str) -> None:
    assert not is_failed_write(error)
