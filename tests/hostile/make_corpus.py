"""Write the hostile corpus: one state file per case, made from `base.yaml` by one change.

Each file's first line says what `validate` must answer: `# expect: TEXT`, a piece of
the one-line error (file:line: field: what was expected). Run from the repository
root: `python -m tests.hostile.make_corpus` (rewrites tests/hostile/<class>/).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
BASE = (HERE / "base.yaml").read_text().split("\n", 1)[1]  # without its comment line

# (old text in base.yaml, new text); every case changes exactly one thing.
Case = tuple[str, str, str, str]  # name, old, new, expect
A = "    address: 198.18.0.11\n"
U = "    ssh_user: root\n"
P = "    ssh_port: 22\n"
DESC = "      description: Allegro agent\n"
EXEC = "      exec_start: /usr/bin/python3 /usr/local/bin/timmy-agent --name allegro\n"
USER = "      user: root\n"
WD = "      working_directory: /root\n"
ENV = "      environment: {AGENT_NAME: allegro}\n"
RSEC = "      restart_sec: 5s\n"
CPATH = "      - path: /root/allegro/configs/agent.toml\n"
OWNER = "        owner: root\n"
GROUP = "        group: root\n"
MODE = '        mode: "0640"\n'
PKG = "    install: {kind: apt, packages: [python3]}\n"
URL = (
    '      - {kind: http, url: "http://{address}:11434/api/tags", json_key: models, timeout: 2s}\n'
)
TCP = "      - {kind: tcp, port: 11434}\n"
FRESH = "      - {kind: file_fresh, path: /root/allegro/heartbeat.log, max_age: 30m}\n"
MODELS = '  - {service: ollama, endpoint: "http://{address}:11434", present: ["qwen2.5:1.5b"]}\n'
SQLITE = "    sqlite: [/root/allegro/timmy_metrics.db]\n"
GIT = "    git: [/root/allegro/repo]\n"
PATHS = "    paths: [/root/allegro/configs]\n"
EXCL = '    excludes: ["*.tmp"]\n'
SCHED = "    schedule: hourly\n"
REPO = "    repository: sftp:root@hermes:/srv/restic/kimi\n"
PASS = "    password: env:RESTIC_PASSWORD\n"
RET = "    retention: {keep_within: 30d, keep_daily: 7}\n"
RPO = "    rpo: 1h\n"
RTO = "    rto: 15m\n"
INTERVAL = "  interval: 60s\n"
PROBE = "  probe_interval: 5s\n"
ATTEMPTS = "  escalate_after_attempts: 3\n"
KEY = "    ssh_key: /var/cache/fleet-reconciler/demo.id_ed25519\n"
LABELS = "    labels: {vps: kimi}\n"

ADDR = "hosts.kimi.address: expected an IP address or a DNS name"
LOGIN = "string should match pattern '^[a-z_][a-z0-9_-]{0,31}$'"
PATH_CHARS = "expected an absolute path of letters"
NORMAL = "expected a normalised path"
ONE_LINE = "expected one line of text"
DURATION = "expected a duration"
POSITIVE = "expected a duration greater than zero"
TAG = "YAML tag"
PORT_INT = "expected a valid integer"
ABOVE = "expected a duration of at most 3650d"

CLASSES: dict[str, list[Case]] = {
    "yaml": [
        ("merge-key", "hosts:\n", "defaults: &d {ssh_user: root}\nhosts:\n", "unknown key"),
        ("merge-key-use", A, A + "    <<: {ssh_port: 22}\n", "merge keys"),
        (
            "python-object",
            A,
            "    address: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
            TAG,
        ),
        ("python-name", A, "    address: !!python/name:os.system\n", TAG),
        ("unknown-tag", A, "    address: !host 198.18.0.11\n", TAG),
        ("binary-tag", A, "    address: !!binary MTk4LjE4LjAuMTE=\n", TAG),
        ("set-tag", LABELS, "    labels: !!set {a, b}\n", TAG),
        ("omap-tag", LABELS, "    labels: !!omap [{a: b}]\n", TAG),
        ("nul-byte", A, "    address: 198.18.0.11\x00\n", "control character U+0000"),
        ("bell-byte", DESC, "      description: Allegro\x07 agent\n", "control character U+0007"),
        (
            "escape-byte",
            DESC,
            "      description: Allegro \x1b[31magent\n",
            "control character U+001B",
        ),
        ("bom-inside", DESC, "      description: Allegro\ufeffagent\n", "control character U+FEFF"),
        ("recursive-alias-list", LABELS, "    labels: &l [*l]\n", "recursive alias"),
        ("recursive-alias-map", LABELS, "    labels: &l {a: *l}\n", "recursive alias"),
        ("deep-flow", LABELS, "    labels: " + "[" * 200 + "]" * 200 + "\n", "nesting deeper than"),
        (
            "deep-flow-maps",
            LABELS,
            "    labels: " + "{a: " * 100 + "b" + "}" * 100 + "\n",
            "nesting deeper than",
        ),
        ("duplicate-key", P, P + "    ssh_port: 2222\n", "duplicate key"),
        (
            "duplicate-host",
            "  hermes:\n",
            "  kimi:\n    address: 198.18.0.13\n  hermes:\n",
            "duplicate key",
        ),
        ("two-documents", "version: 1\n", "version: 1\n---\nversion: 1\n", "invalid YAML"),
        ("tab-indent", P, "\tssh_port: 22\n", "invalid YAML"),
        ("unclosed-flow", LABELS, "    labels: {vps: kimi\n", "invalid YAML"),
        ("complex-key", LABELS, "    labels: {? [a, b] : c}\n", "expected a plain key"),
        (
            "anchor-on-key-collection",
            LABELS,
            "    labels: {? {a: b} : c}\n",
            "expected a plain key",
        ),
        (
            "timestamp-for-string",
            DESC,
            "      description: 2026-11-28\n",
            "expected a valid string",
        ),
        (
            "null-host",
            "  hermes:\n    address: 198.18.0.12\n",
            "  hermes:\n    address: ~\n",
            "expected a valid string",
        ),
    ],
    "numbers": [
        ("negative-interval", INTERVAL, "  interval: -60\n", POSITIVE),
        ("zero-interval", INTERVAL, "  interval: 0s\n", POSITIVE),
        ("zero-probe", PROBE, "  probe_interval: 0\n", POSITIVE),
        ("negative-rto", RTO, "    rto: -5\n", POSITIVE),
        ("zero-rto", RTO, "    rto: 0s\n", POSITIVE),
        ("negative-rpo", RPO, "    rpo: -3600\n", POSITIVE),
        ("zero-rpo", RPO, "    rpo: 0m\n", POSITIVE),
        ("zero-max-age", FRESH, FRESH.replace("30m", "0s"), POSITIVE),
        ("negative-max-age", FRESH, FRESH.replace("30m", "-30"), POSITIVE),
        ("zero-restart-sec", RSEC, "      restart_sec: 0s\n", POSITIVE),
        ("negative-restart-sec", RSEC, "      restart_sec: -1\n", POSITIVE),
        ("zero-timeout", URL, URL.replace("timeout: 2s", "timeout: 0s"), POSITIVE),
        ("huge-duration-days", RPO, "    rpo: 99999999999999d\n", ABOVE),
        ("huge-duration-int", INTERVAL, "  interval: 100000000000000000000000000000\n", ABOVE),
        ("huge-float-duration", INTERVAL, "  interval: 1.0e+308\n", ABOVE),
        ("inf-duration", INTERVAL, "  interval: .inf\n", ABOVE),
        ("nan-duration", INTERVAL, "  interval: .nan\n", POSITIVE),
        ("duration-words", INTERVAL, "  interval: 5 minutes\n", DURATION),
        ("duration-weeks", RPO, "    rpo: 1w\n", DURATION),
        ("duration-bool", RPO, "    rpo: true\n", DURATION),
        ("duration-list", RPO, "    rpo: [1h]\n", DURATION),
        ("port-bool", P, "    ssh_port: true\n", PORT_INT),
        ("port-zero", P, "    ssh_port: 0\n", "greater than or equal to 1"),
        ("port-too-big", P, "    ssh_port: 70000\n", "less than or equal to 65535"),
        ("port-negative", P, "    ssh_port: -22\n", "greater than or equal to 1"),
        ("port-string", P, '    ssh_port: "22"\n', PORT_INT),
        ("port-float", P, "    ssh_port: 22.5\n", PORT_INT),
        ("port-huge", P, "    ssh_port: 100000000000000000000000\n", "less than or equal to 65535"),
        ("tcp-port-bool", TCP, "      - {kind: tcp, port: false}\n", PORT_INT),
        ("tcp-port-zero", TCP, "      - {kind: tcp, port: 0}\n", "greater than or equal to 1"),
        ("keep-daily-zero", RET, "    retention: {keep_daily: 0}\n", "greater than or equal to 1"),
        (
            "keep-daily-negative",
            RET,
            "    retention: {keep_daily: -7}\n",
            "greater than or equal to 1",
        ),
        ("keep-daily-bool", RET, "    retention: {keep_daily: true}\n", PORT_INT),
        ("keep-within-zero", RET, "    retention: {keep_within: 0d}\n", POSITIVE),
        ("attempts-zero", ATTEMPTS, "  escalate_after_attempts: 0\n", "greater than or equal to 1"),
        ("attempts-bool", ATTEMPTS, "  escalate_after_attempts: true\n", PORT_INT),
        (
            "expect-status-99",
            URL,
            URL.replace("json_key", "expect_status: 99, json_key"),
            "greater than or equal to 100",
        ),
        ("version-2", "version: 1\n", "version: 2\n", "version: expected 1"),
        ("version-string", "version: 1\n", 'version: "1"\n', "version: expected 1"),
    ],
    "addresses": [
        ("address-semicolon", A, "    address: 198.18.0.11; touch /tmp/pwned\n", ADDR),
        ("address-command", A, "    address: $(touch /tmp/pwned)\n", ADDR),
        ("address-backtick", A, "    address: '`touch /tmp/pwned`'\n", ADDR),
        ("address-empty", A, '    address: ""\n', ADDR),
        ("address-option", A, "    address: -oProxyCommand=touch /tmp/pwned\n", ADDR),
        ("address-option-nospace", A, "    address: -oProxyCommand=id\n", ADDR),
        ("address-space-option", A, "    address: 198.18.0.11 -oProxyCommand=id\n", ADDR),
        ("address-word-underscore", A, "    address: my_host\n", ADDR),
        ("address-leading-hyphen-label", A, "    address: -kimi.example\n", ADDR),
        ("address-long-label", A, f"    address: {'a' * 64}.example\n", ADDR),
        ("address-at", A, "    address: root@198.18.0.11\n", ADDR),
        ("address-url", A, "    address: ssh://198.18.0.11\n", ADDR),
        ("address-newline", A, '    address: "198.18.0.11\\nProxyCommand id"\n', ADDR),
        ("address-number", A, "    address: 198\n", "expected a valid string"),
        ("user-option", U, "    ssh_user: -oProxyCommand=touch /tmp/pwned\n", LOGIN),
        ("user-option-nospace", U, "    ssh_user: -oProxyCommand=id\n", LOGIN),
        ("user-space", U, "    ssh_user: root admin\n", LOGIN),
        ("user-semicolon", U, "    ssh_user: root;id\n", LOGIN),
        ("user-empty", U, '    ssh_user: ""\n', LOGIN),
        ("user-at", U, "    ssh_user: root@evil\n", LOGIN),
        ("user-uppercase-long", U, f"    ssh_user: {'a' * 40}\n", LOGIN),
        ("key-relative", KEY, "    ssh_key: id_ed25519\n", PATH_CHARS),
        ("key-dotdot", KEY, "    ssh_key: /var/cache/../../root/.ssh/id_ed25519\n", NORMAL),
        ("key-space", KEY, "    ssh_key: /var/cache/x -oProxyCommand=id\n", PATH_CHARS),
        (
            "repo-user-option",
            REPO,
            "    repository: sftp:-oProxyCommand=touch@hermes:/srv/restic/kimi\n",
            "sftp user",
        ),
        (
            "repo-user-option-space",
            REPO,
            "    repository: sftp:-oProxyCommand=touch /tmp/x@hermes:/srv/restic/kimi\n",
            "expected an absolute path",
        ),
        (
            "repo-host-option",
            REPO,
            "    repository: sftp:root@-oProxyCommand=id:/srv/restic/kimi\n",
            "expected an IP address or a DNS name",
        ),
        (
            "repo-host-command",
            REPO,
            "    repository: sftp:root@$(id):/srv/restic/kimi\n",
            "expected an IP address or a DNS name",
        ),
        (
            "repo-relative-path",
            REPO,
            "    repository: sftp:root@hermes:srv/restic/kimi\n",
            PATH_CHARS,
        ),
        ("repo-dotdot", REPO, "    repository: sftp:root@hermes:/srv/restic/../../etc\n", NORMAL),
        (
            "repo-unknown-fleet-host",
            REPO,
            "    repository: sftp:root@hermez:/srv/restic/kimi\n",
            "unknown host 'hermez'",
        ),
        (
            "repo-rclone",
            REPO,
            "    repository: rclone:remote:bucket\n",
            "expected an absolute path, sftp:",
        ),
        (
            "repo-relative",
            REPO,
            "    repository: restic/kimi\n",
            "expected an absolute path, sftp:",
        ),
        (
            "repo-rest-ftp",
            REPO,
            "    repository: rest:ftp://198.18.0.12/kimi\n",
            "expected an absolute http",
        ),
        (
            "repo-rest-credentials",
            REPO,
            "    repository: rest:http://user:secret@198.18.0.12:8000/kimi\n",
            "put no credentials",
        ),
        (
            "repo-s3-option",
            REPO,
            "    repository: s3:-oProxy/bucket\n",
            "expected an absolute path, sftp:",
        ),
        ("repo-newline", REPO, '    repository: "/srv/restic\\n/kimi"\n', ONE_LINE),
        ("repo-path-command", REPO, "    repository: /srv/restic/$(id)\n", PATH_CHARS),
    ],
    "rendered": [
        (
            "description-newline",
            DESC,
            '      description: "x\\nExecStartPre=/bin/touch /tmp/pwned"\n',
            ONE_LINE,
        ),
        ("description-cr", DESC, '      description: "x\\rExecStartPre=/bin/id"\n', ONE_LINE),
        (
            "exec-start-newline",
            EXEC,
            '      exec_start: "/bin/true\\nExecStartPre=/bin/touch /tmp/pwned"\n',
            ONE_LINE,
        ),
        ("user-newline", USER, '      user: "root\\nExecStartPre=/bin/touch /tmp/pwned"\n', LOGIN),
        ("user-option", USER, "      user: -x\n", LOGIN),
        (
            "env-value-newline",
            ENV,
            '      environment: {AGENT_NAME: "a\\nExecStartPre=/bin/touch /tmp/pwned"}\n',
            ONE_LINE,
        ),
        (
            "env-key-space",
            ENV,
            '      environment: {"A B": x}\n',
            "string should match pattern '^[A-Za-z_]",
        ),
        (
            "env-key-equals",
            ENV,
            '      environment: {"A=B": x}\n',
            "string should match pattern '^[A-Za-z_]",
        ),
        (
            "env-key-newline",
            ENV,
            '      environment: {"A\\nExecStartPre": x}\n',
            "string should match pattern '^[A-Za-z_]",
        ),
        (
            "env-key-quote",
            ENV,
            "      environment: {'A\"': x}\n",
            "string should match pattern '^[A-Za-z_]",
        ),
        ("workdir-command", WD, "      working_directory: /root/$(touch /tmp/pwned)\n", PATH_CHARS),
        ("workdir-specifier", WD, "      working_directory: /root/%h\n", PATH_CHARS),
        ("workdir-relative", WD, "      working_directory: root\n", PATH_CHARS),
        (
            "schedule-newline",
            SCHED,
            '    schedule: "hourly\\nExecStartPre=/bin/touch /tmp/pwned"\n',
            "expected a systemd calendar expression",
        ),
        (
            "schedule-invalid",
            SCHED,
            "    schedule: every tuesday\n",
            "systemd does not accept 'every tuesday'",
        ),
        ("schedule-empty", SCHED, '    schedule: ""\n', "expected a systemd calendar expression"),
        (
            "schedule-semicolon",
            SCHED,
            "    schedule: hourly;id\n",
            "expected a systemd calendar expression",
        ),
        ("schedule-bad-date", SCHED, "    schedule: '*-13-45 25:00'\n", "systemd does not accept"),
        ("sqlite-command", SQLITE, "    sqlite: [/root/$(touch /tmp/pwned).db]\n", PATH_CHARS),
        ("sqlite-backtick", SQLITE, "    sqlite: ['/root/`touch /tmp/pwned`.db']\n", PATH_CHARS),
        (
            "sqlite-quote",
            SQLITE,
            "    sqlite: [\"/root/x'; touch /tmp/pwned; '.db\"]\n",
            PATH_CHARS,
        ),
        ("sqlite-dotdot", SQLITE, "    sqlite: [/root/../etc/shadow]\n", NORMAL),
        ("sqlite-relative", SQLITE, "    sqlite: [metrics.db]\n", PATH_CHARS),
        ("git-semicolon", GIT, "    git: [/root/repo;touch]\n", PATH_CHARS),
        ("git-space", GIT, "    git: [/root/repo --upload-pack=touch]\n", PATH_CHARS),
        ("paths-newline", PATHS, '    paths: ["/root/a\\n/etc"]\n', PATH_CHARS),
        ("paths-double-slash", PATHS, "    paths: [//root/allegro]\n", NORMAL),
        ("paths-trailing-slash", PATHS, "    paths: [/root/allegro/]\n", NORMAL),
        ("paths-dot", PATHS, "    paths: [/root/./allegro]\n", NORMAL),
        ("exclude-newline", EXCL, '    excludes: ["*.tmp\\nrm -rf /"]\n', ONE_LINE),
        ("config-path-dotdot", CPATH, "      - path: /root/allegro/../../etc/passwd\n", NORMAL),
        ("config-path-relative", CPATH, "      - path: agent.toml\n", PATH_CHARS),
        ("config-path-command", CPATH, "      - path: /root/$(id)\n", PATH_CHARS),
        ("owner-semicolon", OWNER, "        owner: root;id\n", LOGIN),
        ("owner-option", OWNER, "        owner: --reference=/etc/shadow\n", LOGIN),
        ("group-newline", GROUP, '        group: "root\\nid"\n', LOGIN),
        ("mode-invalid", MODE, '        mode: "0999"\n', "string should match pattern"),
        ("mode-int", MODE, "        mode: 640\n", "expected a valid string"),
        ("mode-setuid", MODE, '        mode: "4755"\n', "string should match pattern"),
        (
            "apt-semicolon",
            PKG,
            "    install: {kind: apt, packages: ['python3;touch /tmp/pwned']}\n",
            "string should match pattern '^[a-z0-9][a-z0-9+.-]+$'",
        ),
        (
            "apt-option",
            PKG,
            "    install: {kind: apt, packages: [-oAPT::Update::Pre-Invoke::=id]}\n",
            "string should match pattern '^[a-z0-9][a-z0-9+.-]+$'",
        ),
        (
            "apt-uppercase",
            PKG,
            "    install: {kind: apt, packages: [Python3]}\n",
            "string should match pattern '^[a-z0-9][a-z0-9+.-]+$'",
        ),
        ("apt-empty", PKG, "    install: {kind: apt, packages: []}\n", "at least 1 item"),
        (
            "model-no-tag",
            MODELS,
            MODELS.replace("qwen2.5:1.5b", "qwen2.5"),
            "string should match pattern",
        ),
        (
            "model-dotdot",
            MODELS,
            MODELS.replace("qwen2.5:1.5b", "../../x:1"),
            "string should match pattern",
        ),
        (
            "model-space",
            MODELS,
            MODELS.replace("qwen2.5:1.5b", "qwen 2:1"),
            "string should match pattern",
        ),
        (
            "file-dest-dotdot",
            PKG,
            "    install: {kind: file, source: https://198.18.0.1/x, sha256: '"
            + "0" * 64
            + "', dest: /usr/local/bin/../../../etc/x}\n",
            NORMAL,
        ),
        (
            "file-source-option",
            PKG,
            "    install: {kind: file, source: -oProxyCommand=id, sha256: '"
            + "0" * 64
            + "', dest: /usr/local/bin/x}\n",
            "expected a file path or an http(s) URL",
        ),
        (
            "file-source-ftp",
            PKG,
            "    install: {kind: file, source: 'ftp://198.18.0.1/x', sha256: '"
            + "0" * 64
            + "', dest: /usr/local/bin/x}\n",
            "expected an absolute http:// or https:// URL",
        ),
        (
            "file-sha-uppercase",
            PKG,
            "    install: {kind: file, source: https://198.18.0.1/x, sha256: '"
            + "A" * 64
            + "', dest: /usr/local/bin/x}\n",
            "string should match pattern",
        ),
        (
            "template-absolute",
            "        content: \"name = 'allegro'\\n\"\n",
            "        template: /root/.ssh/id_ed25519\n",
            "expected a path relative to the state file",
        ),
        (
            "template-escape",
            "        content: \"name = 'allegro'\\n\"\n",
            "        template: ../../../etc/shadow\n",
            "expected a path relative to the state file",
        ),
        ("label-newline", LABELS, '    labels: {vps: "kimi\\nx"}\n', ONE_LINE),
        ("label-key-space", LABELS, '    labels: {"a b": kimi}\n', "string should match pattern"),
        ("json-key-newline", URL, URL.replace("json_key: models", 'json_key: "a\\nb"'), ONE_LINE),
    ],
    "urls": [
        (
            "url-unknown-placeholder",
            URL,
            URL.replace("{address}", "{host}"),
            "unknown placeholder {host}",
        ),
        (
            "url-stray-open-brace",
            URL,
            URL.replace("/api/tags", "/api/{tags"),
            "expected a URL whose braces are placeholders",
        ),
        (
            "url-stray-close-brace",
            URL,
            URL.replace("/api/tags", "/api/tags}"),
            "expected a URL whose braces are placeholders",
        ),
        (
            "url-attribute-access",
            URL,
            URL.replace("{address}", "{address.__class__}"),
            "unknown placeholder",
        ),
        ("url-index", URL, URL.replace("{address}", "{address[0]}"), "unknown placeholder"),
        ("url-conversion", URL, URL.replace("{address}", "{address!r}"), "unknown placeholder"),
        (
            "url-format-spec",
            URL,
            URL.replace("{address}", "{address:>999999999}"),
            "unknown placeholder",
        ),
        ("url-positional", URL, URL.replace("{address}", "{0}"), "unknown placeholder {0}"),
        ("url-empty-field", URL, URL.replace("{address}", "{}"), "unknown placeholder"),
        (
            "url-not-a-url",
            URL,
            URL.replace("http://{address}:11434/api/tags", "not a url"),
            "expected an absolute http",
        ),
        ("url-ftp", URL, URL.replace("http://", "ftp://"), "expected an absolute http"),
        (
            "url-file",
            URL,
            URL.replace("http://{address}:11434/api/tags", "file:///etc/shadow"),
            "expected an absolute http",
        ),
        (
            "url-relative",
            URL,
            URL.replace("http://{address}:11434", ""),
            "expected an absolute http",
        ),
        ("url-newline", URL, URL.replace("/api/tags", "/api/tags\\nx"), ONE_LINE),
        (
            "url-no-host",
            URL,
            URL.replace("http://{address}:11434", "http://"),
            "expected an absolute http",
        ),
        (
            "endpoint-unknown-placeholder",
            MODELS,
            MODELS.replace("{address}", "{addr}"),
            "unknown placeholder {addr}",
        ),
        (
            "endpoint-stray-brace",
            MODELS,
            MODELS.replace("{address}", "{address"),
            "expected a URL whose braces",
        ),
        (
            "endpoint-not-http",
            MODELS,
            MODELS.replace("http://", "gopher://"),
            "expected an absolute http",
        ),
        (
            "endpoint-attribute",
            MODELS,
            MODELS.replace("{address}", "{address.upper}"),
            "unknown placeholder",
        ),
        (
            "endpoint-empty",
            MODELS,
            MODELS.replace('"http://{address}:11434"', '""'),
            "expected an absolute http",
        ),
    ],
    "references": [
        (
            "service-unknown-host",
            "    host: hermes\n    unit: {description: Ollama",
            "    host: hermez\n    unit: {description: Ollama",
            "unknown host 'hermez'",
        ),
        (
            "backup-unknown-host",
            "  metrics-db:\n    host: kimi\n",
            "  metrics-db:\n    host: kimmy\n",
            "unknown host 'kimmy'",
        ),
        (
            "model-unknown-service",
            MODELS,
            MODELS.replace("service: ollama", "service: olama"),
            "unknown service 'olama'",
        ),
        (
            "secret-value",
            PASS,
            "    password: hunter2-very-secret\n",
            "expected a secret reference",
        ),
        ("secret-env-bad-name", PASS, "    password: env:1BAD\n", "expected a secret reference"),
        (
            "secret-file-relative",
            PASS,
            "    password: file:etc/restic\n",
            "expected a secret reference",
        ),
        (
            "secret-file-space",
            PASS,
            "    password: file:/etc/restic password\n",
            "expected a secret reference",
        ),
        (
            "failover-set",
            "reconciler:\n",
            "failover:\n  primary: kimi\n  backup: hermes\n  services: [timmy-agent]\nreconciler:\n",
            "automatic failover is not built yet",
        ),
        (
            "notifications-set",
            "reconciler:\n",
            "notifications:\n  channels:\n    log: {kind: log}\n  routes:\n    P2: [log]\nreconciler:\n",
            "notification delivery is not built yet",
        ),
        (
            "duplicate-managed-file",
            GROUP,
            GROUP + "      - {path: /root/allegro/configs/agent.toml, content: x}\n",
            "is already managed by service 'timmy-agent'",
        ),
        ("service-name-uppercase", "  ollama:\n", "  Ollama:\n", "invalid name 'Ollama'"),
        ("host-name-space", "  hermes:\n", "  'her mes':\n", "invalid name 'her mes'"),
        ("host-name-option", "  hermes:\n", "  '-oProxy':\n", "invalid name '-oProxy'"),
    ],
    "structure": [
        ("unknown-top-key", "reconciler:\n", "reconcilers: {}\nreconciler:\n", "unknown key"),
        ("unknown-host-key", P, P + "    sssh_port: 22\n", "unknown key; did you mean 'ssh_port'?"),
        (
            "unknown-unit-key",
            RSEC,
            RSEC + "      exec_start_pre: /bin/touch /tmp/pwned\n",
            "unknown key",
        ),
        (
            "unknown-health-kind",
            TCP,
            "      - {kind: exec, command: touch /tmp/pwned}\n",
            "does not match any of the expected tags",
        ),
        ("hosts-empty", "hosts:\n", "hosts: {}\nx:\n", "unknown key"),
        (
            "hosts-list",
            "hosts:\n  kimi:\n",
            "hosts:\n  - kimi\nxx:\n  kimi:\n",
            "expected a valid dictionary",
        ),
        ("services-list", "services:\n", "services: []\nxs:\n", "expected a valid dictionary"),
        ("missing-address", A, "", "required field 'address' is missing"),
        ("missing-schedule", SCHED, "", "required field 'schedule' is missing"),
        (
            "backup-no-data",
            SQLITE + GIT + PATHS,
            "",
            "expected at least one of 'paths', 'sqlite' or 'git'",
        ),
        (
            "config-both-sources",
            "        content: \"name = 'allegro'\\n\"\n",
            "        content: x\n        template: agent.toml\n",
            "expected exactly one of 'content' or 'template'",
        ),
        (
            "restart-policy-invalid",
            "      restart: always\n",
            "      restart: sometimes\n",
            "expected 'no', 'on-success'",
        ),
        ("role-invalid", LABELS, LABELS + "    role: boss\n", "expected 'primary', 'backup'"),
        (
            "host-key-policy-invalid",
            LABELS,
            LABELS + "    host_key_policy: accept-anything\n",
            "expected 'strict' or 'trust-on-first-use'",
        ),
    ],
}


def write_corpus(root: Path = HERE) -> int:
    written = 0
    for cls, cases in CLASSES.items():
        folder = root / cls
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name, old, new, expect in cases:
            if BASE.count(old) != 1:
                raise SystemExit(f"{cls}/{name}: {old!r} is not in base.yaml exactly once")
            text = f"# expect: {expect}\n" + BASE.replace(old, new)
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8", newline="")
            written += 1
    written += _write_extra(root / "bounds")
    return written


def _write_extra(folder: Path) -> int:
    """Whole-file cases: size, alias bombs, bytes that are not UTF-8, not a mapping."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    lol = '["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
    bomb = [f"a0: &a0 {lol}"] + [
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)
    ]
    files = {
        "alias-bomb.yaml": ("expands past", "\n".join(bomb) + "\n" + BASE),
        "alias-chain.yaml": (
            "expands past",
            "".join(
                f"c{i}: &c{i} [*c{i - 1}, *c{i - 1}]\n" if i else "c0: &c0 [x]\n" for i in range(40)
            )
            + BASE,
        ),
        "deep-block.yaml": (
            "nesting deeper than",
            BASE + "".join("  " * i + f"k{i}:\n" for i in range(80)),
        ),
        "not-a-mapping.yaml": ("expected a mapping", "- version: 1\n"),
        "scalar.yaml": ("expected a mapping", "just words\n"),
        "empty.yaml": ("expected a mapping", ""),
    }
    for name, (expect, text) in files.items():
        (folder / name).write_text(f"# expect: {expect}\n{text}", encoding="utf-8")
    (folder / "latin1.yaml").write_bytes(b"# expect: cannot read\nversion: 1\nhosts: {k\xe9: {}}\n")
    (folder / "too-big.yaml").write_text(
        "# expect: a state file may have\n" + BASE + "# " + "x" * (1 << 20) + "\n"
    )
    return len(files) + 2


if __name__ == "__main__":
    print(f"wrote {write_corpus()} files under {HERE}", file=sys.stderr)
