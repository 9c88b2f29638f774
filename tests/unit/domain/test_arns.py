"""ARNs: one parser for functions, layers and queues."""

from __future__ import annotations

from lamina.domain.arns import lambda_arn, parse_arn


def test_function_arns_with_and_without_qualifier() -> None:
    arn = parse_arn("arn:aws:lambda:us-east-1:000000000000:function:fn:live")
    assert arn is not None
    assert (arn.partition, arn.service, arn.region, arn.account) == ("aws", "lambda", "us-east-1", "000000000000")
    assert (arn.resource_type, arn.name, arn.qualifier) == ("function", "fn", "live")
    assert arn.unqualified == "arn:aws:lambda:us-east-1:000000000000:function:fn"
    bare = parse_arn("arn:aws:lambda:us-east-1:000000000000:function:fn")
    assert bare is not None and bare.qualifier is None and bare.unqualified == bare_text()


def bare_text() -> str:
    return "arn:aws:lambda:us-east-1:000000000000:function:fn"


def test_layers_and_queues() -> None:
    layer = parse_arn("arn:aws:lambda:eu-west-1:123456789012:layer:libs:3")
    assert layer is not None and (layer.resource_type, layer.name, layer.qualifier) == ("layer", "libs", "3")
    queue = parse_arn("arn:aws:sqs:us-east-1:000000000000:my-queue")
    assert queue is not None and queue.service == "sqs" and queue.resource == ("my-queue",) and queue.name is None


def test_what_is_not_an_arn() -> None:
    for text in ("fn", "fn:live", "000000000000:function:fn", "arn:aws:lambda", "", "nra:a:b:c:d:e"):
        assert parse_arn(text) is None


def test_builder_round_trips() -> None:
    text = lambda_arn("us-east-1", "000000000000", "layer", "libs", 2)
    assert text == "arn:aws:lambda:us-east-1:000000000000:layer:libs:2"
    parsed = parse_arn(text)
    assert parsed is not None and lambda_arn(parsed.region, parsed.account, "layer", "libs") == parsed.unqualified
