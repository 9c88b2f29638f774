import pytest

from lamina.domain.names import resolve
from lamina.errors import InvalidParameterValueException, ResourceNotFoundException


def test_plain_name() -> None:
    ref = resolve("fn", None, region="us-east-1", account_id="000000000000")
    assert (ref.account_id, ref.region, ref.name, ref.qualifier) == ("000000000000", "us-east-1", "fn", None)
    assert ref.arn == "arn:aws:lambda:us-east-1:000000000000:function:fn"


def test_name_with_qualifier() -> None:
    assert resolve("fn:$LATEST", None, region="eu-west-1", account_id="1").qualifier == "$LATEST"


def test_partial_arn() -> None:
    ref = resolve("123456789012:function:fn:prod", None, region="us-east-1", account_id="000000000000")
    assert (ref.account_id, ref.name, ref.qualifier) == ("123456789012", "fn", "prod")


def test_full_arn() -> None:
    ref = resolve("arn:aws:lambda:us-east-1:000000000000:function:fn", "$LATEST",
                  region="us-east-1", account_id="000000000000")
    assert ref.name == "fn" and ref.qualifier == "$LATEST"
    assert ref.arn.endswith(":function:fn:$LATEST")


def test_arn_from_another_region_is_not_reachable() -> None:
    with pytest.raises(ResourceNotFoundException) as err:
        resolve("arn:aws:lambda:ap-southeast-1:000000000000:function:fn", None,
                region="us-east-1", account_id="000000000000")
    assert err.value.message == "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')"


def test_qualifier_mismatch() -> None:
    with pytest.raises(InvalidParameterValueException) as err:
        resolve("fn:1", "2", region="us-east-1", account_id="000000000000")
    assert err.value.message == "The derived qualifier from the function name does not match the specified qualifier."
