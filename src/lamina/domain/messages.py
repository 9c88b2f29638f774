"""AWS's messages that more than one place says, worded once."""

from __future__ import annotations


def revision_mismatch(read_with: str = "GetFunction/GetAlias") -> str:
    """A RevisionId precondition failed; `read_with` names the API that returns the current one."""
    return (f"The Revision Id provided does not match the latest Revision Id. Call the {read_with} API to "
            "retrieve the latest Revision Id")


def function_not_ready(state: str) -> str:
    return f"The operation cannot be performed at this time. The function is currently in the following state: {state}"


def update_in_progress(arn: str) -> str:
    return f"The operation cannot be performed at this time. An update is in progress for resource: {arn}"
