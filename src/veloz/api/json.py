"""JSON as `api.md` specifies it: decimals are JSON numbers (in plain notation, at the
precision of what they measure: `veloz.model.numbers`), and the OpenAPI schema says
`number` for them, so documents and answers agree."""

from decimal import Decimal
from typing import Any

from litestar import Response
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from veloz.codec import encode_json


class DecimalAsNumber(OpenAPISchemaPlugin):
    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        return value is Decimal

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        return Schema(type=OpenAPIType.NUMBER)


class NumberJSONResponse(Response[Any]):
    """Litestar's own encoder writes decimals as strings; ours writes numbers."""

    def render(self, content: Any, media_type: str, enc_hook: Any = None) -> bytes:
        if isinstance(content, bytes):
            return content
        if media_type.startswith("application/json"):
            return encode_json(content)
        return super().render(content, media_type)
