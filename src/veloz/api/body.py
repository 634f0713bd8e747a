"""Reading a request body that may be JSON or form-encoded (the runbooks use both), and
documenting it in OpenAPI from the command Struct it becomes, since Litestar can describe
only one media type by itself and decodes only strict JSON."""

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from litestar import Request
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins.struct import StructSchemaPlugin
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from veloz.model.errors import CommandRejected, ErrorCode

AnyRequest = Request[Any, Any, Any]
_object = msgspec.json.Decoder(dict[str, Any])
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def is_form(content_type: str) -> bool:
    """A `Content-Type` header's value names a form (else the body is read as JSON)."""
    return content_type.split(";", maxsplit=1)[0].strip().lower() in _FORM_TYPES


async def read_fields(request: AnyRequest, *, required: bool = True) -> dict[str, Any]:
    """The body's fields: a JSON object, or a form. An empty body is `{}` unless required."""
    if is_form(request.headers.get("content-type", "")):
        form = await request.form()
        return {key: form.get(key) for key in form}
    return json_fields(await request.body(), required=required)


def json_fields(raw: bytes, *, required: bool = True) -> dict[str, Any]:
    """A JSON body's fields; an empty body is `{}` unless required."""
    if not raw.strip():
        if required:
            raise CommandRejected(
                "the request body is empty; send a JSON object", code=ErrorCode.BAD_JSON
            )
        return {}
    try:
        return _object.decode(raw)
    except msgspec.DecodeError as exc:
        raise CommandRejected(
            f"the body must be a JSON object: {exc}", code=ErrorCode.BAD_JSON
        ) from None


def body_operation(command: type[msgspec.Struct], *, required: bool = True) -> type[Operation]:
    """An Operation class whose request body is `command`'s schema, as JSON or as a form."""
    schema = command_schema(command)

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=required,
                content={
                    media: OpenAPIMediaType(schema=schema)
                    for media in ("application/json", "application/x-www-form-urlencoded")
                },
            )

    return WithBody


class _DecimalAsNumberOrString(OpenAPISchemaPlugin):
    """In a request body a decimal may be a JSON number or a numeric string (forms only
    have strings); the parsers take both."""

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Decimal

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(one_of=[Schema(type=OpenAPIType.NUMBER), Schema(type=OpenAPIType.STRING)])


def command_schema(command: type[msgspec.Struct]) -> Schema:
    """The OpenAPI schema of a command Struct as a request body: fields by their wire names
    (renames applied) with the constraints their annotations carry.

    Litestar's schema generator is private API (pinned in requirements.lock). It runs on
    a registry of its own here, so the result is inlined: the operation does not depend
    on components the app's document may not register."""
    creator = SchemaCreator(plugins=[_DecimalAsNumberOrString(), StructSchemaPlugin()])
    root = creator.for_field_definition(FieldDefinition.from_annotation(command))
    schema: Schema = _inlined(root, creator)
    return dataclasses.replace(schema, required=schema.required or None)


def _inlined(node: Any, creator: SchemaCreator) -> Any:
    if isinstance(node, Reference):
        return _inlined(creator.schema_registry.from_reference(node).schema, creator)
    if isinstance(node, Schema):
        changes = {
            f.name: _inlined(getattr(node, f.name), creator)
            for f in dataclasses.fields(node)
            if isinstance(getattr(node, f.name), Schema | Reference | list | dict)
        }
        return dataclasses.replace(node, **changes)
    if isinstance(node, list):
        return [_inlined(item, creator) for item in node]
    if isinstance(node, dict):
        return {key: _inlined(value, creator) for key, value in node.items()}
    return node
