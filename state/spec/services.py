"""`services:` and `models:`: what runs where (install, unit, config files, health checks)
and the Ollama models."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import Field, Strict, model_validator

from state.spec.base import Spec
from state.types import (
    AbsPath,
    AptPackage,
    Duration,
    EnvName,
    FileMode,
    LoginName,
    Name,
    OllamaModelName,
    Port,
    Sha256,
    UnitLine,
)
from state.url_types import (
    SourceRef,
    TemplateRef,
    UrlTemplate,
)


class AptInstall(Spec):
    """Install Debian packages with apt."""

    kind: Literal["apt"] = Field(description="Install with apt.", examples=["apt"])
    packages: list[AptPackage] = Field(
        min_length=1, description="Debian package names.", examples=[["git"]]
    )


class FileInstall(Spec):
    """Copy a file or binary from a local path or URL, checked against its sha256."""

    kind: Literal["file"] = Field(description="Copy one file.", examples=["file"])
    source: SourceRef = Field(
        description="Local path (relative to the state file) or http(s) URL.",
        examples=["../tests/standins/http_standins.py"],
    )
    sha256: Sha256 = Field(
        description="Expected sha256 of the file.", examples=["e3b0c442" + "0" * 56]
    )
    dest: AbsPath = Field(
        description="Where the file goes on the host.", examples=["/usr/local/bin/ollama"]
    )
    mode: FileMode = Field("0755", description="File mode.", examples=["0755"])


class NoInstall(Spec):
    """The service needs nothing installed (its binary is already on the host)."""

    kind: Literal["none"] = Field(description="Install nothing.", examples=["none"])


Install = Annotated[AptInstall | FileInstall | NoInstall, Field(discriminator="kind")]

RestartPolicy = Literal[
    "no", "on-success", "on-failure", "on-abnormal", "on-watchdog", "on-abort", "always"
]


class Unit(Spec):
    """The systemd unit that runs the service; rendered to /etc/systemd/system/NAME.service."""

    description: UnitLine = Field(description="Unit Description=.", examples=["Ollama stand-in"])
    exec_start: UnitLine = Field(
        description="ExecStart= command line.", examples=["/usr/local/bin/ollama serve"]
    )
    user: LoginName = Field("root", description="User= the service runs as.", examples=["root"])
    working_directory: AbsPath | None = Field(
        None, description="WorkingDirectory=.", examples=["/root/allegro"]
    )
    environment: dict[EnvName, UnitLine] = Field(
        default_factory=dict,
        description="Environment= variables. Put no secrets here; use an EnvironmentFile.",
        examples=[{"OLLAMA_HOST": "0.0.0.0:11434"}],
    )
    restart: RestartPolicy = Field(
        "on-failure", description="Restart= policy.", examples=["always"]
    )
    restart_sec: Duration = Field(timedelta(seconds=5), description="RestartSec=.", examples=["5s"])
    enabled: bool = Field(True, description="Enable the unit at boot.", examples=[True])


class ConfigFile(Spec):
    """A file the service reads; exactly one of `content` or `template`."""

    path: AbsPath = Field(description="Path on the host.", examples=["/etc/allegro/agent.toml"])
    content: str | None = Field(None, description="Literal content.", examples=["debug = false\n"])
    template: TemplateRef | None = Field(
        None,
        description="Template file, relative to the state file and inside its directory; "
        "$host, $address and $service are substituted.",
        examples=["templates/agent.toml"],
    )
    mode: FileMode = Field("0644", description="File mode.", examples=["0640"])
    owner: LoginName = Field("root", description="Owning user.", examples=["root"])
    group: LoginName = Field("root", description="Owning group.", examples=["root"])
    sensitive: bool = Field(
        False,
        description="Never show its content: plans, JSON plans, the journal and the "
        "dashboard say only that it changed (as Terraform shows a sensitive value).",
        examples=[True],
    )

    @model_validator(mode="after")
    def _one_source(self) -> ConfigFile:
        if (self.content is None) == (self.template is None):
            raise ValueError("expected exactly one of 'content' or 'template'")
        return self


class HttpCheck(Spec):
    """Healthy when an HTTP GET answers with the expected status (and JSON key)."""

    kind: Literal["http"] = Field(description="HTTP probe.", examples=["http"])
    url: UrlTemplate = Field(
        description="URL probed from the controller; {address} is the host's address.",
        examples=["http://{address}:11434/api/tags"],
    )
    expect_status: Annotated[int, Strict()] = Field(
        200, ge=100, le=599, description="Expected status."
    )
    json_key: UnitLine | None = Field(
        None, description="Top-level JSON key that must be present.", examples=["models"]
    )
    timeout: Duration = Field(timedelta(seconds=2), description="Request timeout.")


class TcpCheck(Spec):
    """Healthy when a TCP connection to the host's port succeeds."""

    kind: Literal["tcp"] = Field(description="TCP connect probe.", examples=["tcp"])
    port: Port = Field(description="Port on the service's host.", examples=[3000])
    timeout: Duration = Field(timedelta(seconds=2), description="Connect timeout.")


class SystemdCheck(Spec):
    """Healthy when the service's unit is active."""

    kind: Literal["systemd"] = Field(description="systemd ActiveState probe.", examples=["systemd"])


class FileFreshCheck(Spec):
    """Healthy when a file was modified recently (the runbook's 'no log entries for 30 minutes')."""

    kind: Literal["file_fresh"] = Field(description="File age probe.", examples=["file_fresh"])
    path: AbsPath = Field(description="File on the host.", examples=["/var/log/heartbeat.log"])
    max_age: Duration = Field(description="Maximum age.", examples=["30m"])


HealthCheck = Annotated[
    HttpCheck | TcpCheck | SystemdCheck | FileFreshCheck, Field(discriminator="kind")
]


class Service(Spec):
    """One service on one host: what to install, its unit, its files and its health."""

    host: Name = Field(description="Name of the host that runs it.", examples=["hermes"])
    install: Install = Field(
        default_factory=lambda: NoInstall(kind="none"), description="How it is installed."
    )
    unit: Unit | None = Field(None, description="Its systemd unit; none for a plain install.")
    config_files: list[ConfigFile] = Field(default_factory=list, description="Its files.")
    health: list[HealthCheck] = Field(default_factory=list, description="Its health checks.")
    rto: Duration = Field(
        timedelta(minutes=15),
        description="Recovery time objective: how long it may take to become healthy.",
        examples=["5m"],
    )
    rpo: Duration | None = Field(
        None,
        description="Recovery point objective of the service's data: `reconcile drill` "
        "checks the newest snapshot of every backup policy on its host against it.",
        examples=["1h"],
    )


class ModelSet(Spec):
    """Ollama models that must be present behind one Ollama service."""

    service: Name = Field(description="The Ollama service.", examples=["ollama"])
    endpoint: UrlTemplate = Field(
        "http://{address}:11434",
        description="Ollama API base URL; {address} is the service host's address.",
    )
    present: list[OllamaModelName] = Field(
        min_length=1, description="Models as name:tag.", examples=[["qwen2.5:1.5b"]]
    )
    prune: bool = Field(False, description="Remove models that are not listed.")
