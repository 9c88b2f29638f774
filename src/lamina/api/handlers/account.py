"""The account: GetAccountSettings, its limits and what its functions use.

AccountUsage counts the account's functions in every region (AWS counts one region's); the
restructuring of issue 13 kept that as it was.
"""

from __future__ import annotations

from lamina.api import render
from lamina.api.handlers.context import Handler, Output, Params, RequestContext, Services

__all__ = ["HANDLERS"]


async def get_account_settings(s: Services, ctx: RequestContext, p: Params) -> Output:
    return render.account_settings(
        concurrency_limit=s.concurrency.limit,
        unreserved=await s.concurrency.unreserved(ctx.account_id),
        functions=[c for c in s.functions.all() if c.account_id == ctx.account_id])


HANDLERS: dict[str, Handler] = {
    "GetAccountSettings": get_account_settings,
}
