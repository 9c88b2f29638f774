"""ARNs, parsed once: `arn:partition:service:region:account:resource`.

The resource keeps its own colon-separated parts: `function:name[:qualifier]`,
`layer:name:version`, an SQS queue's `name`. Callers validate what the model has not
(the API model has already checked the patterns of ARNs that come in requests).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Arn:
    partition: str
    service: str
    region: str
    account: str
    resource: tuple[str, ...]  # e.g. ("function", "name", "qualifier"), ("queue-name",)

    @property
    def resource_type(self) -> str:
        return self.resource[0]

    @property
    def name(self) -> str | None:
        """The named resource of a typed ARN (`function:name…`, `layer:name…`)."""
        return self.resource[1] if len(self.resource) > 1 else None

    @property
    def qualifier(self) -> str | None:
        """A function's version or alias, a layer's version number."""
        return self.resource[2] if len(self.resource) > 2 else None

    @property
    def unqualified(self) -> str:
        """The ARN without its qualifier."""
        return ":".join(("arn", self.partition, self.service, self.region, self.account, *self.resource[:2]))


def parse_arn(text: str) -> Arn | None:
    """The parts of `text`, or None when it is not an ARN at all."""
    parts = text.split(":")
    if len(parts) < 6 or parts[0] != "arn":
        return None
    return Arn(parts[1], parts[2], parts[3], parts[4], tuple(parts[5:]))


def lambda_arn(region: str, account: str, kind: str, name: str, qualifier: str | int | None = None) -> str:
    """A Lambda ARN: `kind` is `function` or `layer`."""
    base = f"arn:aws:lambda:{region}:{account}:{kind}:{name}"
    return base if qualifier is None else f"{base}:{qualifier}"
