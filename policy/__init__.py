"""The pure policy engine for KubeVirt NIC hot plug / hot unplug.

No I/O, no clock, no logging: `evaluate` takes a `Review`, a `Context` and a
`PolicyConfig` and returns a `Verdict`. Adapters (webhook, CLI, controller) do
everything else.
"""

from policy.annotations import (
    LEDGER,
    REQUEST,
    STATUS,
    HotplugRequest,
    HotplugStatus,
    Ledger,
    Phase,
    parse_ledger,
    parse_request,
    parse_status,
    render_status,
)
from policy.catalogue import CATALOGUE
from policy.cluster import parse_version
from policy.config import ConfigError, PolicyConfig, parse_config, render_config
from policy.engine import evaluate
from policy.ids import RuleId
from policy.review import Context, Mode, Operation, Review, UserInfo
from policy.verdicts import Action, Cause, CauseType, Finding, PatchOp, Verdict

__all__ = [
    "CATALOGUE",
    "LEDGER",
    "REQUEST",
    "STATUS",
    "Action",
    "Cause",
    "CauseType",
    "ConfigError",
    "Context",
    "Finding",
    "HotplugRequest",
    "HotplugStatus",
    "Ledger",
    "Mode",
    "Operation",
    "PatchOp",
    "Phase",
    "PolicyConfig",
    "Review",
    "RuleId",
    "UserInfo",
    "Verdict",
    "evaluate",
    "parse_config",
    "parse_ledger",
    "parse_request",
    "parse_status",
    "parse_version",
    "render_config",
    "render_status",
]
