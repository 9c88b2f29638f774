"""The handler registry and the pieces every area shares: which operations are served, the
one paging helper, and the orders lists page on."""

from __future__ import annotations

import pytest

from lamina.api import handlers
from lamina.api.handlers import HANDLERS
from lamina.api.handlers.context import DEFAULT_PAGE_SIZE, page
from lamina.api.handlers.event_invoke import qualifier_order
from lamina.api.model import LambdaModel
from lamina.errors import InvalidParameterValueException

SERVED = {
    "AddLayerVersionPermission", "AddPermission", "CreateAlias", "CreateFunction", "DeleteAlias",
    "DeleteFunction", "DeleteFunctionConcurrency", "DeleteFunctionEventInvokeConfig", "DeleteLayerVersion",
    "DeleteProvisionedConcurrencyConfig", "GetAccountSettings", "GetAlias", "GetFunction",
    "GetFunctionConcurrency", "GetFunctionConfiguration", "GetFunctionEventInvokeConfig", "GetLayerVersion",
    "GetLayerVersionByArn", "GetLayerVersionPolicy", "GetPolicy", "GetProvisionedConcurrencyConfig",
    "GetRuntimeManagementConfig", "Invoke", "InvokeAsync", "ListAliases", "ListFunctionEventInvokeConfigs",
    "ListFunctions", "ListLayerVersions", "ListLayers", "ListProvisionedConcurrencyConfigs", "ListTags",
    "ListVersionsByFunction", "PublishLayerVersion", "PublishVersion", "PutFunctionConcurrency",
    "PutFunctionEventInvokeConfig", "PutProvisionedConcurrencyConfig", "PutRuntimeManagementConfig",
    "RemoveLayerVersionPermission", "RemovePermission", "TagResource", "UntagResource", "UpdateAlias",
    "UpdateFunctionCode", "UpdateFunctionConfiguration",
    "UpdateFunctionEventInvokeConfig",
}


def test_the_registry_serves_exactly_these_operations() -> None:
    assert set(HANDLERS) == SERVED
    assert set(LambdaModel().service.operation_names) >= SERVED


def test_the_public_api_is_pinned() -> None:
    assert sorted(handlers.__all__) == ["HANDLERS", "Handler", "RequestContext", "Services", "current_code"]


def test_an_operation_claimed_twice_stops_the_import() -> None:
    async def one(*_: object) -> dict[str, object]:
        return {}

    with pytest.raises(RuntimeError, match="GetAlias"):
        handlers._merge({"GetAlias": one}, {"GetAlias": one})


def test_paging_follows_markers_to_the_end() -> None:
    items = list(range(1, 8))
    seen: list[int] = []
    params: dict[str, object] = {"MaxItems": 3}
    pages = 0
    while True:
        got, marker = page(items, lambda i: i, params)
        seen += got
        pages += 1
        if marker is None:
            break
        assert not marker.isdigit()  # opaque, as AWS's markers are
        params = {"MaxItems": 3, "Marker": marker}
    assert (seen, pages) == (items, 3)


def test_paging_descending_and_by_default_fifty() -> None:
    items = list(range(120, 0, -1))
    first, marker = page(items, lambda i: i, {}, descending=True)
    assert len(first) == DEFAULT_PAGE_SIZE and marker is not None
    second, _ = page(items, lambda i: i, {"Marker": marker}, descending=True)
    assert second[0] == first[-1] - 1


@pytest.mark.parametrize("marker", ["2", "zzz", "a0", "eyJhZnRlciI6IFtdfQ==", "%%%"])
def test_a_marker_lamina_did_not_issue_is_refused(marker: str) -> None:
    with pytest.raises(InvalidParameterValueException, match="Invalid marker"):
        page(["a", "b"], lambda s: s, {"Marker": marker})


def test_qualifiers_order_as_the_event_config_listing() -> None:
    listed = ["$LATEST", "1", "2", "9", "10", "100", "a", "b-1", "live"]
    assert sorted(listed, key=qualifier_order) == listed
