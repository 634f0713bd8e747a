"""Reading a request body that may be JSON or form-encoded (the runbooks use both), and
documenting it in OpenAPI, since Litestar can describe only one media type by itself."""

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIType,
    Operation,
    Reference,
    RequestBody,
    Schema,
)

from veloz.model.errors import CommandRejected

AnyRequest = Request[Any, Any, Any]
_object = msgspec.json.Decoder(dict[str, Any])
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def read_fields(request: AnyRequest, *, required: bool = True) -> dict[str, Any]:
    """The body's fields: a JSON object, or a form. An empty body is `{}` unless required."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in _FORM_TYPES:
        form = await request.form()
        return {key: form.get(key) for key in form}
    raw = await request.body()
    if not raw.strip():
        if required:
            raise CommandRejected("the request body is empty; send a JSON object", code="bad_json")
        return {}
    try:
        return _object.decode(raw)
    except msgspec.DecodeError as exc:
        raise CommandRejected(f"the body must be a JSON object: {exc}", code="bad_json") from None


def body_operation(schema: Schema, *, required: bool = True) -> type[Operation]:
    """An Operation class whose request body is `schema` as JSON or as a form."""

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


def object_schema(required: list[str], **properties: Schema | Reference) -> Schema:
    return Schema(type=OpenAPIType.OBJECT, properties=properties, required=required or None)


def string(description: str, **extra: Any) -> Schema:
    return Schema(type=OpenAPIType.STRING, description=description, **extra)


def decimal(description: str) -> Schema:
    return Schema(
        one_of=[Schema(type=OpenAPIType.NUMBER), Schema(type=OpenAPIType.STRING)],
        description=description,
    )
