"""Function names, partial and full ARNs, and qualifiers, resolved as AWS resolves them.

Accepted forms: `name`, `name:qualifier`, `account:function:name[:qualifier]`,
`arn:aws:lambda:region:account:function:name[:qualifier]`. The model has already checked
the pattern and length; this module splits and cross-checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from lamina.domain.arns import parse_arn
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException


@dataclass(frozen=True, slots=True)
class FunctionRef:
    account_id: str
    region: str
    name: str
    qualifier: str | None

    @property
    def arn(self) -> str:
        base = f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"
        return f"{base}:{self.qualifier}" if self.qualifier else base

    @property
    def unqualified_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"


def resolve(function_name: str, qualifier: str | None, *, region: str, account_id: str) -> FunctionRef:
    parts = function_name.split(":")
    derived: str | None = None
    arn = parse_arn(function_name)
    if arn is not None and arn.name is not None:
        # arn:partition:lambda:region:account:function:name[:qualifier]
        arn_region, arn_account, name, derived = arn.region, arn.account, arn.name, arn.qualifier
        if arn_region and arn_region != region:
            raise ResourceNotFoundException(
                f"Functions from '{arn_region}' are not reachable in this region ('{region}')")
        account_id = arn_account or account_id
    elif len(parts) >= 3 and parts[1] == "function":
        account_id, name = parts[0], parts[2]
        derived = parts[3] if len(parts) > 3 else None
    else:
        name = parts[0]
        derived = parts[1] if len(parts) > 1 else None
    if derived is not None and qualifier is not None and derived != qualifier:
        raise InvalidParameterValueException(
            "The derived qualifier from the function name does not match the specified qualifier.")
    return FunctionRef(account_id, region, name, qualifier if qualifier is not None else derived)
