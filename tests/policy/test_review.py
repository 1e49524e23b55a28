"""What the engine is asked: a review's defaults and what it carries."""

from __future__ import annotations

from policy import Context, Operation, Review, UserInfo


def test_a_review_defaults_to_an_anonymous_user_no_dry_run_and_no_request_namespace() -> None:
    review = Review(operation=Operation.CREATE, new={})
    assert (review.old, review.dry_run, review.namespace) == (None, False, "")
    assert (review.user.username, review.user.groups) == ("", ())
    assert review.user == UserInfo()


def test_a_review_keeps_what_it_was_given() -> None:
    user = UserInfo(username="jane@example.com", groups=("developers",))
    new, old = {"kind": "VirtualMachine"}, {"kind": "VirtualMachine", "spec": {}}
    review = Review(
        operation=Operation.UPDATE, new=new, old=old, user=user, dry_run=True, namespace="vms"
    )
    assert (review.operation, review.new, review.old, review.user) == (
        Operation.UPDATE,
        new,
        old,
        user,
    )
    assert (review.dry_run, review.namespace) == (True, "vms")


def test_an_empty_context_knows_nothing() -> None:
    context = Context()
    assert (context.vmi, context.nads, context.kubevirt, context.migrations) == (
        None,
        None,
        None,
        (),
    )
