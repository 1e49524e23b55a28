"""Offline admission: mutate, apply the patch, then validate, as kube-apiserver does."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy import Cause, Context, Mode, PolicyConfig, Review, evaluate
from webhook.patches import check_engine_patch


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckResult:
    """The outcome of both admission phases for one request."""

    allowed: bool
    causes: tuple[Cause, ...]
    warnings: tuple[str, ...]
    audit: tuple[Cause, ...]
    patch: list[dict[str, Any]]
    object: Any

    def render(self) -> dict[str, Any]:
        """The `--output json` document of `hotplug-guard check`."""
        return {
            "allowed": self.allowed,
            "causes": [
                {"rule": c.rule, "type": c.type.value, "field": c.field, "message": c.message}
                for c in self.causes
            ],
            "warnings": list(self.warnings),
            "audit": [{"rule": c.rule, "message": c.message} for c in self.audit],
            "patch": self.patch,
            "object": self.object,
        }


def check(review: Review, context: Context, config: PolicyConfig) -> CheckResult:
    """Run the mutating phase, apply its patch, then the validating phase on the result.

    `PatchSelfCheckError` when the engine's patch does not apply: a bug, reported as such.
    """
    mutated = evaluate(review, context, config, mode=Mode.MUTATE)
    patch = mutated.render_patch()
    obj: Any = review.new
    if patch:
        obj = check_engine_patch(copy.deepcopy(review.new), patch)
    if not mutated.allowed:
        return _result(mutated.causes, mutated.warnings, mutated.audit, patch, obj, allowed=False)
    validated = evaluate(
        Review(
            operation=review.operation,
            new=obj if isinstance(obj, Mapping) else None,
            old=review.old,
            user=review.user,
            dry_run=review.dry_run,
            namespace=review.namespace,
        ),
        context,
        config,
        mode=Mode.VALIDATE,
    )
    return _result(
        validated.causes,
        mutated.warnings + validated.warnings,
        validated.audit,
        patch,
        obj,
        allowed=validated.allowed,
    )


def _result(
    causes: tuple[Cause, ...],
    warnings: tuple[str, ...],
    audit: tuple[Cause, ...],
    patch: list[dict[str, Any]],
    obj: Any,
    *,
    allowed: bool,
) -> CheckResult:
    return CheckResult(
        allowed=allowed,
        causes=causes,
        warnings=tuple(dict.fromkeys(warnings)),
        audit=audit,
        patch=patch,
        object=obj,
    )
