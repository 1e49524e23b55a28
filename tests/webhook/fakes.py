"""Stand-ins for the engine and the context source, and an app built from them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import Flask

from policy import Context, Mode, PolicyConfig, Review, Verdict
from policy.deadline import Deadline
from policy.signing import SigningKeys
from webhook.admission import Admission
from webhook.app import create_app
from webhook.context import ContextLookup, ContextState
from webhook.metrics import Metrics


@dataclass(slots=True, kw_only=True)
class FakeEngine:
    """Returns `verdict` (or raises `error`) and remembers what it was asked."""

    verdict: Verdict = field(default_factory=lambda: Verdict(allowed=True))
    error: Exception | None = None
    calls: list[tuple[Review, Context, Mode]] = field(default_factory=list)

    def __call__(
        self,
        review: Review,
        context: Context,
        config: PolicyConfig,
        *,
        mode: Mode,
        keys: SigningKeys | None = None,
        deadline: Deadline | None = None,
    ) -> Verdict:
        self.calls.append((review, context, mode))
        if self.error is not None:
            raise self.error
        return self.verdict


@dataclass(slots=True, kw_only=True)
class StubContext:
    """A context source with a fixed answer that records the time budget it was given."""

    state: ContextState = ContextState.SYNCED
    context: Context = field(default_factory=Context)
    budgets: list[float] = field(default_factory=list)
    kubevirt_namespaces: frozenset[str] | None = None

    def ready(self) -> bool:
        return self.state is not ContextState.UNSYNCED

    def lookup(self, namespace: str, name: str, *, deadline: float) -> ContextLookup:
        self.budgets.append(deadline - time.monotonic())
        return ContextLookup(context=self.context, state=self.state)

    def kubevirt_runs_in(self, namespace: str) -> bool | None:
        return self.kubevirt_namespaces is None or namespace in self.kubevirt_namespaces


@dataclass(slots=True, kw_only=True)
class Built:
    app: Flask
    engine: FakeEngine
    context: StubContext
    metrics: Metrics


def build(
    *,
    engine: FakeEngine | None = None,
    context: StubContext | None = None,
    config: PolicyConfig | None = None,
) -> Built:
    """The real app around a fake engine and a stub context source."""
    engine = engine or FakeEngine()
    context = context or StubContext()
    metrics = Metrics()
    admission = Admission(evaluate=engine, config=config or PolicyConfig(), context=context)
    return Built(
        app=create_app(admission=admission, metrics=metrics),
        engine=engine,
        context=context,
        metrics=metrics,
    )
