"""Resource-based policies (AddPermission / RemovePermission / GetPolicy).

Policies are stored and validated now and rendered exactly as AWS renders them; they are
enforced when function URLs and IAM arrive. Each qualifier (the function itself, a
version or an alias) has its own policy and its own RevisionId, renewed on every change
(GetPolicy returns it; RevisionId preconditions check it).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from lamina.control.functions import FunctionService
from lamina.control.layers import LayerName, LayerService
from lamina.domain.messages import revision_mismatch
from lamina.domain.model import LATEST, FunctionConfig, Policy, new_revision_id
from lamina.domain.names import FunctionRef
from lamina.errors import (
    InvalidParameterValueException,
    PolicyLengthExceededException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
)

MAX_POLICY_BYTES = 20480
_ACCOUNT = re.compile(r"\d{12}")


def principal_of(principal: str) -> Any:
    if principal == "*":
        return "*"
    if _ACCOUNT.fullmatch(principal):
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    if principal.startswith("arn:aws:iam::"):
        return {"AWS": principal}
    if re.fullmatch(r"[a-z0-9.-]+\.amazonaws\.com(\.cn)?", principal):
        return {"Service": principal}
    raise InvalidParameterValueException(
        "The provided principal was invalid. Please check the principal and try again.")


class PolicyService:
    def __init__(self, functions: FunctionService) -> None:
        self._functions = functions

    async def add(self, ref: FunctionRef, *, sid: str, action: str, principal: str, source_arn: str | None,
            source_account: str | None, principal_org_id: str | None, event_source_token: str | None,
            function_url_auth_type: str | None, revision_id: str | None) -> str:
        latest, key, resource = self._target(ref)
        if key == LATEST:
            raise InvalidParameterValueException("We currently do not support adding policies for $LATEST.")
        policy = latest.policies.get(key) or Policy(new_revision_id())
        self._check_revision(policy, revision_id)
        if any(existing == sid for existing, _ in policy.statements):
            raise ResourceConflictException(
                f"The statement id ({sid}) provided already exists. Please provide a new statement id, or remove "
                "the existing statement.")
        statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow", "Principal": principal_of(principal),
                                     "Action": action, "Resource": resource}
        condition: dict[str, dict[str, str]] = {}
        if source_account:
            condition.setdefault("StringEquals", {})["AWS:SourceAccount"] = source_account
        if principal_org_id:
            condition.setdefault("StringEquals", {})["aws:PrincipalOrgID"] = principal_org_id
        if event_source_token:
            condition.setdefault("StringEquals", {})["lambda:EventSourceToken"] = event_source_token
        if function_url_auth_type:
            condition.setdefault("StringEquals", {})["lambda:FunctionUrlAuthType"] = function_url_auth_type
        if source_arn:
            condition.setdefault("ArnLike", {})["AWS:SourceArn"] = source_arn
        if condition:
            statement["Condition"] = condition
        rendered = json.dumps(statement, separators=(",", ":"))
        updated = replace(policy, revision_id=new_revision_id(), statements=(*policy.statements, (sid, rendered)))
        size = len(_document(updated))
        if size > MAX_POLICY_BYTES:
            raise PolicyLengthExceededException(
                f"The final policy size ({size}) is bigger than the limit ({MAX_POLICY_BYTES}).")
        await self._save(latest, key, updated)
        return rendered

    async def remove(self, ref: FunctionRef, sid: str, revision_id: str | None) -> None:
        latest, key, _resource = self._target(ref)
        policy = latest.policies.get(key)
        if policy is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        self._check_revision(policy, revision_id)
        kept = tuple((s, text) for s, text in policy.statements if s != sid)
        if len(kept) == len(policy.statements):
            raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
        await self._save(latest, key, replace(policy, revision_id=new_revision_id(), statements=kept))

    def get(self, ref: FunctionRef) -> tuple[str, str]:
        latest, key, _resource = self._target(ref)
        policy = latest.policies.get(key)
        if policy is None or not policy.statements:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return _document(policy), policy.revision_id

    def _target(self, ref: FunctionRef) -> tuple[FunctionConfig, str, str]:
        """($LATEST, the policy's key, the Resource ARN statements name)."""
        latest = self._functions.latest(ref)
        qualifier = ref.qualifier
        if qualifier is None:
            return latest, "", latest.arn
        if qualifier != LATEST:
            self._functions.get(ref)  # a version or alias that exists, else "Function not found"
        return latest, qualifier, f"{latest.arn}:{qualifier}"

    @staticmethod
    def _check_revision(policy: Policy, revision_id: str | None) -> None:
        if revision_id is not None and revision_id != policy.revision_id:
            raise PreconditionFailedException(revision_mismatch("GetPolicy"))

    async def _save(self, latest: FunctionConfig, key: str, policy: Policy) -> None:
        await self._functions.save_latest(latest, replace(latest, policies={**latest.policies, key: policy}))


class LayerPolicyService:
    """Who may use a layer version: `lambda:GetLayerVersion` for an account, an organisation or everyone."""

    def __init__(self, layers: LayerService) -> None:
        self._layers = layers

    async def add(self, name: LayerName, version: int, *, sid: str, action: str, principal: str,
            organization_id: str | None, revision_id: str | None) -> tuple[str, str]:
        layer = await self._layers.get(name, version)
        policy = layer.policy or Policy(new_revision_id())
        _check_layer_revision(policy, revision_id)
        if any(existing == sid for existing, _ in policy.statements):
            raise ResourceConflictException(
                f"The statement id ({sid}) provided already exists. Please provide a new statement id, or remove "
                "the existing statement.")
        statement: dict[str, Any] = {"Sid": sid, "Effect": "Allow",
                                     "Principal": principal if principal == "*" else principal_of(principal),
                                     "Action": action, "Resource": layer.arn}
        if organization_id:
            statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
        rendered = json.dumps(statement, separators=(",", ":"))
        updated = Policy(new_revision_id(), (*policy.statements, (sid, rendered)))
        await self._layers.set_policy(layer, updated)
        return rendered, updated.revision_id

    async def remove(self, name: LayerName, version: int, sid: str, revision_id: str | None) -> None:
        layer = await self._layers.get(name, version)
        if layer.policy is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        _check_layer_revision(layer.policy, revision_id)
        kept = tuple((s, text) for s, text in layer.policy.statements if s != sid)
        if len(kept) == len(layer.policy.statements):
            raise ResourceNotFoundException(f"Statement {sid} is not found in resource policy.")
        await self._layers.set_policy(layer, Policy(new_revision_id(), kept))

    async def get(self, name: LayerName, version: int) -> tuple[str, str]:
        layer = await self._layers.get(name, version)
        if layer.policy is None or not layer.policy.statements:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return _document(layer.policy), layer.policy.revision_id


def _check_layer_revision(policy: Policy, revision_id: str | None) -> None:
    if revision_id is not None and revision_id != policy.revision_id:
        raise PreconditionFailedException(revision_mismatch("GetLayerPolicy"))


def _document(policy: Policy) -> str:
    statements = ",".join(text for _sid, text in policy.statements)
    return f'{{"Version":"2012-10-17","Id":"default","Statement":[{statements}]}}'
