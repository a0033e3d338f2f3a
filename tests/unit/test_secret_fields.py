"""A secret field, given any value of any YAML type and shape, never has that value in
what validation says: refused or accepted, the output names the field, not the secret."""

from __future__ import annotations

import json
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from state.errors import SpecError
from state.secrets import secret_fields
from tests.spec_text import backup_policy
from tests.unit.helpers import load_text
from tests.unit.test_spec import BASE

SECRET = "Zq9SEKRITvalue"
SECRET_NUMBER = 987654321987

scalars = st.one_of(
    st.text(max_size=12).map(lambda t: f"{t}{SECRET}{t}"),
    st.just(SECRET_NUMBER),
    st.just(float(SECRET_NUMBER)),
    st.just(f"123456:{SECRET}"),
    st.just(f"Bearer {SECRET}"),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(st.sampled_from(["a", "token", "value"]), inner, min_size=1, max_size=2),
    ),
    max_leaves=5,
)

CHANNELS = """\
notifications:
  channels:
    tg: {kind: telegram, token: env:T, chat_id: "1"}
    forge: {kind: gitea_issue, url: "http://198.18.0.12:3000", repo: a/b, token: env:G}
  routes: {P0: [tg, forge]}
backups:
""" + backup_policy(
    "db",
    "kimi",
    "/srv/restic",
    "env:X",
    retention="{keep_last: 3}",
    more=("copies:", '  offsite: {repository: "local:/srv/copies", password: env:Y, rpo: 8d}'),
)
PLACES = [
    ("notifications", "channels", "tg", "token"),
    ("notifications", "channels", "forge", "token"),
    ("backups", "db", "password"),
    ("backups", "db", "copies", "offsite", "password"),
]


def _with(value: Any, place: tuple[str, ...], drop_kind: bool) -> str:
    data = yaml.safe_load(BASE + CHANNELS)
    node = data
    for part in place[:-1]:
        node = node[part]
    node[place[-1]] = value
    if drop_kind and "kind" in node:
        del node["kind"]  # the channel's type unknown: the whole mapping is refused
    return yaml.safe_dump(data, sort_keys=False)


def test_the_secret_fields_are_the_spec_s_secret_references() -> None:
    assert secret_fields() == {"token", "password"}


@settings(max_examples=150, deadline=None)
@given(values, st.sampled_from(PLACES), st.booleans())
def test_a_secret_value_never_appears_in_what_validation_says(
    value: Any, place: tuple[str, ...], drop_kind: bool
) -> None:
    text = _with(value, place, drop_kind)
    try:
        loaded = load_text(text)
    except SpecError as exc:
        said = str(exc) + json.dumps([str(p) for p in exc.problems])
        assert SECRET not in said and str(SECRET_NUMBER) not in said, said
        assert any(".".join(place[:-1]) in str(p) for p in exc.problems), said
    else:  # accepted only as a reference, and a reference is no secret
        raise AssertionError(f"accepted a value in a secret field: {loaded.fleet}")


def test_a_resolved_secret_shows_as_stars_everywhere_but_where_it_is_used(
    monkeypatch: Any,
) -> None:
    from state.secrets import resolve_secret

    monkeypatch.setenv("FLEET_TEST_SECRET", SECRET)
    secret = resolve_secret("env:FLEET_TEST_SECRET")
    shown = [
        str(secret),
        repr(secret),
        f"{secret}",
        f"{secret!r}",
        str([secret]),
        str({"k": secret}),
    ]
    shown.append(repr(ValueError("cannot send", secret)))
    assert all(SECRET not in text for text in shown), shown
    assert secret.reveal() == SECRET
