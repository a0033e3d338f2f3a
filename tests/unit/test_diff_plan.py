"""diff and plan are pure: properties over generated fleets, and targeted perturbations."""

from __future__ import annotations

from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.engine.changes import Phase
from reconciler.engine.diff import diff
from reconciler.engine.plan import make_plan, plan_to_json, pure_starts, sort_key
from reconciler.hosts.observation import CheckResult, FleetState, HostState
from reconciler.render.outcome_text import mask_secrets, render_plan
from state.load import LoadedFleet
from tests.unit.helpers import ideal_observation, load_text

names = st.from_regex(r"[a-z][a-z0-9-]{1,8}", fullmatch=True)
paths = st.from_regex(r"/etc/[a-z]{1,8}/[a-z]{1,8}\.conf", fullmatch=True)


@st.composite
def fleets(draw: st.DrawFn) -> dict[str, Any]:
    host_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    hosts = {h: {"address": f"198.18.9.{i + 1}"} for i, h in enumerate(host_names)}
    services = {}
    for name in draw(st.lists(names, max_size=5, unique=True)):
        service: dict[str, Any] = {"host": draw(st.sampled_from(host_names))}
        if draw(st.booleans()):
            service["unit"] = {
                "description": draw(st.text("abc xyz", min_size=1, max_size=10)),
                "exec_start": f"/usr/bin/{name} --flag",
                "enabled": draw(st.booleans()),
                "environment": draw(
                    st.dictionaries(st.from_regex(r"[A-Z]{1,5}", fullmatch=True), names, max_size=2)
                ),
            }
        if draw(st.booleans()):
            service["install"] = {
                "kind": "apt",
                "packages": draw(st.lists(names, min_size=1, max_size=3, unique=True)),
            }
        files = draw(st.lists(paths, max_size=2, unique=True))
        service["config_files"] = [
            {"path": f"{p}.{name}", "content": draw(st.text("ab=\n", max_size=20)), "mode": "0640"}
            for p in files
        ]
        service["health"] = [{"kind": "systemd"}] if "unit" in service else []
        services[name] = service
    spec: dict[str, Any] = {"version": 1, "hosts": hosts, "services": services}
    ollama = [n for n, s in services.items() if "unit" in s]
    with_models: bool = draw(st.booleans())
    if ollama and with_models:
        spec["models"] = [{"service": ollama[0], "present": ["qwen2.5:1.5b", "llama3.2:3b"]}]
    return spec


def load_dict(spec: dict[str, Any]) -> LoadedFleet:
    return load_text(yaml.safe_dump(spec))


@settings(max_examples=80, deadline=None)
@given(fleets())
def test_diff_of_ideal_observation_is_empty(spec: dict[str, Any]) -> None:
    loaded = load_dict(spec)
    observed = ideal_observation(loaded)
    assert diff(loaded, observed) == []
    plan = make_plan(loaded, observed, [])
    assert not plan.summary.pending
    assert "No changes" in render_plan(plan)


@settings(max_examples=80, deadline=None)
@given(fleets())
def test_fresh_hosts_plan_only_creates_and_plans_are_ordered(spec: dict[str, Any]) -> None:
    loaded = load_dict(spec)
    empty = FleetState(
        hosts={h: HostState(name=h, reachable=True, now=1) for h in loaded.fleet.hosts}
    )
    changes = diff(loaded, empty)
    assert {c.action for c in changes} <= {"create"}
    plan = make_plan(loaded, empty, changes)
    assert [h.name for h in plan.hosts] == list(loaded.fleet.hosts)
    for host in plan.hosts:
        keys = [sort_key(a) for a in host.actions]
        assert keys == sorted(keys)
        phases = [a.phase for a in host.actions]
        assert phases == sorted(phases)
    assert plan.summary.create == len(changes)
    assert sum(len(h["actions"]) for h in plan_to_json(plan)["hosts"]) == len(changes)


@settings(max_examples=40, deadline=None)
@given(fleets())
def test_unreachable_host_plans_one_alert_and_others_still_planned(spec: dict[str, Any]) -> None:
    loaded = load_dict(spec)
    ideal = ideal_observation(loaded)
    victim = next(iter(loaded.fleet.hosts))
    hosts = dict(ideal.hosts)
    hosts[victim] = HostState(name=victim, reachable=False, error="timed out")
    changes = diff(loaded, ideal.model_copy(update={"hosts": hosts}))
    assert [(c.host, c.kind) for c in changes] == [(victim, "unreachable")]
    assert make_plan(loaded, ideal, changes).summary.unreachable == 1


SPEC = """\
version: 1
hosts:
  h1: {address: 198.18.9.1}
services:
  ollama:
    host: h1
    unit: {description: Ollama, exec_start: /usr/local/bin/ollama serve}
    config_files:
      - {path: /etc/ollama.env, content: "MODE=fast\\nAPI_TOKEN=abc123\\n"}
    health: [{kind: systemd}]
models:
  - {service: ollama, present: ["qwen2.5:1.5b", "llama3.2:3b"], prune: true}
"""


def _with_host(observed: FleetState, **changes: object) -> FleetState:
    host = observed.hosts["h1"].model_copy(update=changes)
    return observed.model_copy(update={"hosts": {"h1": host}})


def test_edited_unit_file_plans_update_with_diff_and_restart() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    unit = ideal.hosts["h1"].units["ollama"]
    assert unit.file is not None
    edited = unit.model_copy(
        update={"file": unit.file.replace("ollama serve", "ollama serve --debug")}
    )
    changes = diff(loaded, _with_host(ideal, units={"ollama": edited}))
    assert [(c.kind, c.action) for c in changes] == [("unit_file", "update"), ("restart", "update")]
    assert changes[0].reason == "unit file differs: ExecStart changed"
    assert "-ExecStart=/usr/local/bin/ollama serve --debug" in (changes[0].diff or "")
    assert "+ExecStart=/usr/local/bin/ollama serve" in (changes[0].diff or "")


def test_stopped_and_disabled_unit() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    unit = (
        ideal.hosts["h1"]
        .units["ollama"]
        .model_copy(update={"active": "inactive", "enabled": "disabled"})
    )
    changes = diff(loaded, _with_host(ideal, units={"ollama": unit}))
    assert [(c.kind, c.reason) for c in changes] == [
        ("enable", "UnitFileState=disabled"),
        ("start", "ActiveState=inactive"),
    ]


def test_only_a_stopped_unit_is_a_pure_start_and_anything_more_is_a_deploy() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    unit = ideal.hosts["h1"].units["ollama"]
    stopped = unit.model_copy(update={"active": "inactive"})
    models = {"ollama": ideal.models["ollama"].model_copy(update={"present": ()})}
    # Stopped, and its models unlisted (a stopped Ollama cannot answer): start it alone.
    observed = _with_host(ideal, units={"ollama": stopped}).model_copy(update={"models": models})
    plan = make_plan(loaded, observed, diff(loaded, observed))
    assert {a.kind for a in plan.actions} == {"start", "model_pull"}
    assert pure_starts(plan) == {"h1": ["ollama"]}
    # Stopped and disabled, or stopped with its unit file gone: a deploy, not a start.
    for other in (
        stopped.model_copy(update={"enabled": "disabled"}),
        stopped.model_copy(update={"file": None}),
    ):
        observed = _with_host(ideal, units={"ollama": other})
        assert pure_starts(make_plan(loaded, observed, diff(loaded, observed))) == {}
    # Stopped with a config file edited: the deploy writes it, then starts.
    files = dict(ideal.hosts["h1"].files)
    files["/etc/ollama.env"] = None
    observed = _with_host(ideal, units={"ollama": stopped}, files=files)
    assert pure_starts(make_plan(loaded, observed, diff(loaded, observed))) == {}


def test_models_missing_and_pruned() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    models = {
        "ollama": ideal.models["ollama"].model_copy(update={"present": ("qwen2.5:1.5b", "phi:2")})
    }
    changes = diff(loaded, ideal.model_copy(update={"models": models}))
    assert sorted((c.kind, c.subject) for c in changes) == [
        ("model_delete", "model phi:2"),
        ("model_pull", "model llama3.2:3b"),
    ]
    assert all(c.phase == Phase.MODELS for c in changes)


def test_unhealthy_but_converged_service_is_an_alert() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    sick = {"ollama": (CheckResult(check="http x", healthy=False, detail="status 500"),)}
    changes = diff(loaded, ideal.model_copy(update={"health": sick}))
    assert [(c.action, c.kind, c.reason) for c in changes] == [
        ("alert", "restart", "unhealthy: http x: status 500")
    ]
    plan = make_plan(loaded, ideal, changes)
    assert plan.summary.unhealthy == 1 and plan.summary.pending
    assert (
        render_plan(plan).splitlines()[-1]
        == "Plan: 0 to add, 0 to change, 0 to remove; 1 unhealthy."
    )


def test_config_diff_masks_secrets() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    old = ideal.hosts["h1"].files["/etc/ollama.env"]
    assert old is not None
    changed = old.model_copy(
        update={"sha256": "0" * 64, "content": "MODE=slow\nAPI_TOKEN=oldsecret\n"}
    )
    changes = diff(loaded, _with_host(ideal, files={"/etc/ollama.env": changed}))
    assert changes[0].kind == "config" and changes[0].reason == "content differs"
    text = render_plan(make_plan(loaded, ideal, changes))
    assert "oldsecret" not in text and "abc123" not in text
    assert "-MODE=slow" in text and "+MODE=fast" in text and "API_TOKEN=********" in text


def test_mask_secrets_forms() -> None:
    assert mask_secrets('Environment="GITEA_TOKEN=abc"') == 'Environment="GITEA_TOKEN=********"'
    assert mask_secrets("password: hunter2") == "password: ********"
    assert mask_secrets("mode = fast") == "mode = fast"
    # The shapes one pattern missed: JSON keys, Authorization headers, DSN passwords.
    assert mask_secrets('{"token": "t0k en", "n": 1}') == '{"token": "********", "n": 1}'
    assert mask_secrets("'api_key': 'k'") == "'api_key': '********'"
    assert mask_secrets("Authorization: Bearer eyJ.x.y") == "Authorization: Bearer ********"
    assert mask_secrets("authorization = token abc") == "authorization = token ********"
    assert mask_secrets("url = postgres://app:s3cr3t@db/x") == "url = postgres://app:********@db/x"


SENSITIVE_SHAPES = [
    '{"token": "SEKRIT1"}',
    "Authorization: Bearer SEKRIT2",
    "dsn: mysql://root:SEKRIT3@db:3306/app",
    "upstream = https://bot:SEKRIT4@198.18.0.12/",
]


def test_every_output_of_a_config_diff_is_masked_the_same() -> None:
    """The text plan, the JSON plan (and so the journal and the dashboard, which keep
    what the engine made) carry the same masked diff: the diff is masked where it is
    made, not where it is printed."""
    import json

    from reconciler.engine.plan import plan_to_json

    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    old = ideal.hosts["h1"].files["/etc/ollama.env"]
    assert old is not None
    changed = old.model_copy(update={"sha256": "0" * 64, "content": "\n".join(SENSITIVE_SHAPES)})
    plan = make_plan(
        loaded, ideal, diff(loaded, _with_host(ideal, files={"/etc/ollama.env": changed}))
    )
    for shown in (render_plan(plan), json.dumps(plan_to_json(plan)), str(plan.actions)):
        assert "SEKRIT" not in shown, shown


def test_a_sensitive_file_shows_only_that_it_changed() -> None:
    sensitive = SPEC.replace('content: "MODE', 'sensitive: true, content: "MODE', 1)
    loaded = load_text(sensitive)
    assert loaded.fleet.services["ollama"].config_files[0].sensitive
    ideal = ideal_observation(loaded)
    old = ideal.hosts["h1"].files["/etc/ollama.env"]
    assert old is not None
    changed = old.model_copy(update={"sha256": "0" * 64, "content": "MODE=plain-but-private\n"})
    [change] = [
        c
        for c in diff(loaded, _with_host(ideal, files={"/etc/ollama.env": changed}))
        if c.kind == "config"
    ]
    assert change.diff == "(sensitive: content hidden; 1 line(s) before, 2 after)\n"
    assert "plain-but-private" not in render_plan(make_plan(loaded, ideal, [change]))


def test_unit_missing_on_a_running_host() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    changes = diff(loaded, _with_host(ideal, units={}))
    assert [(c.kind, c.action) for c in changes] == [
        ("unit_file", "create"),
        ("enable", "create"),
        ("start", "create"),
    ]


def test_a_drop_in_the_spec_does_not_name_is_drift() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    unit = ideal.hosts["h1"].units["ollama"].model_copy(update={"dropins": ["override.conf"]})
    changes = diff(loaded, _with_host(ideal, units={"ollama": unit}))
    assert [(c.kind, c.action) for c in changes] == [("dropins", "delete"), ("restart", "update")]
    assert changes[0].subject == "drop-ins /etc/systemd/system/ollama.service.d"
    assert changes[0].diff == "-/etc/systemd/system/ollama.service.d/override.conf\n"


def test_a_unit_file_too_large_to_read_is_drift_and_never_shown() -> None:
    loaded = load_text(SPEC)
    ideal = ideal_observation(loaded)
    unit = (
        ideal.hosts["h1"]
        .units["ollama"]
        .model_copy(update={"file": None, "file_cut": "20971520 " + "ab" * 32})
    )
    changes = diff(loaded, _with_host(ideal, units={"ollama": unit}))
    assert [(c.kind, c.action) for c in changes] == [("unit_file", "update"), ("restart", "update")]
    assert "20971520 bytes" in changes[0].reason
    assert len(changes[0].diff or "") < 200


def test_a_diff_past_the_bound_is_summarised() -> None:
    from reconciler.engine.textdiff import MAX_DIFF_CHARS, unified_diff

    shown = unified_diff("a\n" * MAX_DIFF_CHARS, "b\n", "/etc/x")
    assert shown.startswith("(diff larger than 16 KiB: not shown; now ")
    assert "sha256" in shown and len(shown) < 200
