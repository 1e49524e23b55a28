"""The workload a profile-guided build of the compiled modules learns from.

    python scripts/pgo_training.py CASES_DIR...

`scripts/build-compiled` runs it between the two compilations (setup.py,
HOTPLUG_GUARD_PGO). Every policy case file under the given directories (the project's own
suite) is judged twice, as the two ways users meet the engine:

- offline, as `hotplug-guard test` runs it (mutate, patch check, validate);
- through the webhook's app, as `serve` runs it: the case as an AdmissionReview to
  /mutate, its patch applied, then the result to /validate, with the case's cluster
  context and policy config.

Each case's expectations must hold, and the webhook must reach the case's verdict, so that
a miscompiled instrumented build fails the build instead of training it.

The workload sends the same requests every time (no randomness, no clock in them). Run
with one string hash seed, as `scripts/build-compiled` runs it, and without the cyclic
garbage collector (whose runs would count the compiled classes' traversal functions
differently from one run to the next), it counts the same, so two builds of one commit
compile the same library.
"""

from __future__ import annotations

import base64
import copy
import gc
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tree being built, ahead of any installed copy

from hotplug_guard.cases import Case, case_files, load_case, run_case  # noqa: E402
from hotplug_guard.errors import UsageError  # noqa: E402
from policy import Context, evaluate  # noqa: E402
from policy.signing import SigningKeys  # noqa: E402
from webhook.admission import Admission  # noqa: E402
from webhook.app import create_app  # noqa: E402
from webhook.context import ContextLookup, ContextState  # noqa: E402
from webhook.metrics import Metrics  # noqa: E402
from webhook.patches import apply_patch  # noqa: E402

KEYS = SigningKeys(signing=b"profile-training-signing-key-of-32-bytes")
ROUNDS = 3
"""Each case this many times, so the counts weigh the steady state over first calls."""


class CaseContext:
    """The context source of one case: its cluster objects, as a synced cache would give."""

    def __init__(self, context: Context) -> None:
        self._lookup = ContextLookup(context=context, state=ContextState.SYNCED)

    def ready(self) -> bool:
        return True

    def lookup(self, namespace: str, name: str, *, deadline: float) -> ContextLookup:
        return self._lookup

    def kubevirt_runs_in(self, namespace: str) -> bool | None:
        return None


def admission_review(case: Case, index: int, new: Mapping[str, Any] | None) -> dict[str, Any]:
    """The case's request as kube-apiserver sends it (a fixed uid per case)."""
    review = case.review
    metadata = (new or {}).get("metadata")
    name = metadata.get("name", "") if isinstance(metadata, Mapping) else ""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": f"00000000-0000-4000-8000-{index:012d}",
            "kind": {"group": "kubevirt.io", "version": "v1", "kind": "VirtualMachine"},
            "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"},
            "name": name if isinstance(name, str) else "",
            "namespace": review.namespace,
            "operation": review.operation.value,
            "userInfo": {"username": review.user.username, "groups": list(review.user.groups)},
            "object": new,
            "oldObject": review.old,
            "dryRun": review.dry_run,
        },
    }


def _post(client: Any, path: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = client.post(path, data=json.dumps(body), content_type="application/json")
    if reply.status_code != 200:
        raise SystemExit(f"{path} answered {reply.status_code}: {reply.get_data(as_text=True)}")
    response: dict[str, Any] = reply.get_json()["response"]
    return response


def through_the_app(case: Case, index: int) -> bool:
    """/mutate, then /validate of the mutated object, as kube-apiserver calls them; whether
    both allowed the request."""
    admission = Admission(
        evaluate=evaluate, config=case.config, context=CaseContext(case.context), keys=KEYS
    )
    app = create_app(admission=admission, metrics=Metrics(), log_line=lambda *_: None)
    client = app.test_client()
    new = case.review.new
    mutated = _post(client, "/mutate", admission_review(case, index, new))
    if "patch" in mutated:
        patch = json.loads(base64.b64decode(mutated["patch"]))
        new = apply_patch(copy.deepcopy(new), patch)  # in place: the case is judged again
    validated = _post(client, "/validate", admission_review(case, index, new))
    return bool(mutated["allowed"]) and bool(validated["allowed"])


def main(directories: list[str]) -> int:
    if not directories:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        cases = [load_case(path) for path in case_files([Path(d) for d in directories])]
    except UsageError as error:
        print(f"profile training: {error}", file=sys.stderr)
        return 2
    if not cases:
        print(f"profile training: no case files under {', '.join(directories)}", file=sys.stderr)
        return 2
    started = time.monotonic()
    gc.disable()  # see above; the workload's cycles take a few megabytes
    for _ in range(ROUNDS):
        for index, case in enumerate(cases):
            outcome = run_case(case)
            if not outcome.passed:
                print(f"FAIL {case.name}: " + "; ".join(outcome.failures), file=sys.stderr)
                return 1
            if through_the_app(case, index) is not case.expect["allowed"]:
                print(f"FAIL {case.name}: the webhook's verdict differs", file=sys.stderr)
                return 1
    print(
        f"profile training: {len(cases)} cases x {ROUNDS}, offline and through the app, "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
