"""AWS's runtime lifecycle dates as data, and the rule they make.

AWS deprecates each managed runtime on a published date, then blocks CreateFunction with it
(block create), then blocks updates of functions that use it (block update); invocations
are never blocked. `DATES` holds, for every runtime identifier AWS has published dates
for (Java and .NET too, though Lamina serves neither), (deprecation, block create, block
update), as AWS published them on 2026-09-29 (cfn-lint 1.58.0's LmbdRuntimeLifecycle.json,
synced from AWS's docs; see ../shared/reference/runtimes-and-environment.md §1).

Invariants: a block applies from its date on (the date itself included), judged on the
date the caller passes (UTC today unless a test or an operator says otherwise); a runtime
with no dates here (a new one, a typo) is never blocked by this module: whether it exists
is the model's and the catalog's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

__all__ = ["DATES", "Lifecycle", "create_blocked", "no_longer_supported", "today", "update_blocked"]


@dataclass(frozen=True)
class Lifecycle:
    """One runtime's published dates; None where AWS has scheduled none."""

    deprecation: date | None
    block_create: date | None
    block_update: date | None


def _dates(deprecation: str | None, block_create: str | None, block_update: str | None) -> Lifecycle:
    return Lifecycle(*(date.fromisoformat(d) if d else None for d in (deprecation, block_create, block_update)))


# runtime -> (deprecation, block create, block update)
DATES: dict[str, Lifecycle] = {name: _dates(*dates) for name, dates in {
    # Node.js
    "nodejs24.x": ("2028-04-30", "2028-06-01", "2028-07-01"),
    "nodejs22.x": ("2027-04-30", "2027-06-01", "2027-07-01"),
    "nodejs20.x": ("2026-04-30", "2027-02-01", "2027-03-03"),
    "nodejs18.x": ("2025-09-01", "2027-02-01", "2027-03-03"),
    "nodejs16.x": ("2024-06-12", "2027-02-01", "2027-03-03"),
    "nodejs14.x": ("2023-12-04", "2024-01-09", "2027-03-03"),
    "nodejs12.x": ("2023-03-31", "2023-03-31", "2023-04-30"),
    "nodejs10.x": ("2021-07-30", "2021-07-30", "2022-02-14"),
    "nodejs8.10": ("2020-03-06", "2020-02-04", "2020-03-06"),
    "nodejs6.10": ("2019-08-12", "2019-07-12", "2019-08-12"),
    "nodejs4.3": ("2020-03-05", "2020-02-03", "2020-03-05"),
    "nodejs4.3-edge": ("2020-03-05", "2019-03-31", "2019-04-30"),
    "nodejs": ("2016-08-30", "2016-09-30", "2016-10-31"),
    # Python
    "python3.14": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.13": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "python3.12": ("2028-10-31", "2028-11-30", "2029-01-10"),
    "python3.11": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "python3.10": ("2026-10-31", "2027-02-01", "2027-03-03"),
    "python3.9": ("2025-12-15", "2027-02-01", "2027-03-03"),
    "python3.8": ("2024-10-14", "2027-02-01", "2027-03-03"),
    "python3.7": ("2023-12-04", "2024-01-09", "2027-03-03"),
    "python3.6": ("2022-07-18", "2022-07-18", "2022-08-29"),
    "python2.7": ("2021-07-15", "2021-07-15", "2022-05-30"),
    # Ruby
    "ruby4.0": ("2029-03-31", "2029-04-30", "2029-05-31"),
    "ruby3.4": ("2028-03-31", "2028-04-30", "2028-05-31"),
    "ruby3.3": ("2027-03-31", "2027-04-30", "2027-05-31"),
    "ruby3.2": ("2026-03-31", "2027-02-01", "2027-03-03"),
    "ruby2.7": ("2023-12-07", "2024-01-09", "2027-03-03"),
    "ruby2.5": ("2021-07-30", "2021-07-30", "2022-03-31"),
    # Java
    "java25": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "java21": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "java17": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "java11": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "java8.al2": ("2027-06-30", "2027-07-31", "2027-08-31"),
    "java8": ("2024-01-08", "2024-02-08", "2027-03-03"),
    # .NET
    "dotnet10": ("2028-11-14", "2028-12-14", "2029-01-15"),
    "dotnet9": ("2026-11-10", None, None),
    "dotnet8": ("2026-11-10", "2027-02-01", "2027-03-03"),
    "dotnet6": ("2024-12-20", "2027-02-01", "2027-03-03"),
    "dotnetcore3.1": ("2023-04-03", "2023-04-03", "2023-05-03"),
    "dotnetcore2.1": ("2022-01-05", "2022-01-05", "2022-04-13"),
    "dotnetcore2.0": ("2019-05-30", "2019-04-30", "2019-05-30"),
    "dotnetcore1.0": ("2019-06-27", "2019-06-30", "2019-07-30"),
    # OS-only
    "provided.al2023": ("2029-06-30", "2029-07-31", "2029-08-31"),
    "provided.al2": ("2026-07-31", "2027-02-01", "2027-03-03"),
    "provided": ("2024-01-08", "2024-02-08", "2027-03-03"),
    "go1.x": ("2024-01-08", "2024-02-08", "2027-03-03"),
}.items()}


def today() -> date:
    """The date the rules are judged on when nobody says otherwise: today in UTC."""
    return datetime.now(UTC).date()


def _passed(when: date | None, on: date) -> bool:
    return when is not None and on >= when


def create_blocked(runtime: str, on: date) -> bool:
    """CreateFunction with `runtime` is refused on `on`."""
    dates = DATES.get(runtime)
    return dates is not None and _passed(dates.block_create, on)


def update_blocked(runtime: str, on: date) -> bool:
    """Updating a function that uses `runtime` (its code, or setting `runtime` in its
    configuration) is refused on `on`."""
    dates = DATES.get(runtime)
    return dates is not None and _passed(dates.block_update, on)


def no_longer_supported(runtime: str) -> str:
    """AWS's message for a blocked runtime (the same for create and update, recorded from AWS)."""
    return (f"The runtime parameter of {runtime} is no longer supported for creating or updating AWS Lambda "
            "functions. We recommend you use a supported runtime while creating or updating functions.")
