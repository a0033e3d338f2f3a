"""`hosts:`: the machines, and how the controller reaches each over SSH."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from state.spec.base import Spec
from state.types import (
    AbsPath,
    EnvName,
    HostAddress,
    LoginName,
    Port,
    UnitLine,
)


class Host(Spec):
    """A machine reached over SSH."""

    address: HostAddress = Field(description="IP address or DNS name.", examples=["198.18.0.11"])
    ssh_user: LoginName = Field("root", description="SSH login user.", examples=["root"])
    ssh_port: Port = Field(22, description="SSH port.", examples=[22])
    ssh_key: AbsPath | None = Field(
        None,
        description="Private key file; the SSH agent and default keys are used when unset.",
        examples=["/root/.ssh/id_ed25519"],
    )
    ssh_known_hosts: AbsPath | None = Field(
        None,
        description="known_hosts file the host's key is checked against; unset, the "
        "controller user's ~/.ssh/known_hosts.",
        examples=["/var/cache/fleet-reconciler/demo.known_hosts"],
    )
    host_key_policy: Literal["strict", "trust-on-first-use"] = Field(
        "strict",
        description="'strict': the host's key must already be in the known_hosts file, or "
        "every command refuses the host. 'trust-on-first-use': the first key seen is "
        "written there and trusted from then on (say so only when you mean it).",
        examples=["strict"],
    )
    role: Literal["primary", "backup", "witness", "member"] = Field(
        "member", description="The host's part in failover.", examples=["primary"]
    )
    labels: dict[EnvName, UnitLine] = Field(
        default_factory=dict, description="Free-form labels.", examples=[{"vps": "kimi"}]
    )
