"""The request bodies the OpenAPI document shows are generated from the command Structs:
their wire names, what is required, and the loose forms the parsers also take."""

import msgspec
import pytest

from veloz.api.body import command_schema
from veloz.model.commands import CancelAllOrders, CancelOrder, SubmitOrder


@pytest.mark.parametrize("command", [SubmitOrder, CancelOrder, CancelAllOrders])
def test_a_body_lists_the_command_fields_by_their_wire_names(command):
    schema = command_schema(command)
    assert schema.properties is not None
    assert set(schema.properties) == set(command.__struct_encode_fields__)
    required = {f.encode_name for f in msgspec.structs.fields(command) if f.required} or None
    assert (set(schema.required) if schema.required else None) == required


def test_the_order_body_documents_type_patterns_and_loose_decimals():
    document = command_schema(SubmitOrder).to_schema()
    properties = document["properties"]
    assert "type" in properties and "order_type" not in properties
    assert properties["type"]["enum"] == ["LIMIT", "MARKET"]
    assert properties["side"]["enum"] == ["BUY", "SELL"]
    # A form sends every value as a string: a decimal may be a number or a numeric string.
    assert properties["qty"]["oneOf"] == [{"type": "number"}, {"type": "string"}]
    assert properties["client_order_id"]["pattern"] == "^[A-Za-z0-9._:/-]{1,36}$"
    assert properties["strategy_id"]["maxLength"] == 64
    assert "$ref" not in str(document)  # inlined: no component the app might not register
