"""The ASGI app (Litestar): one module per resource, each route a thin call into
EngineClient, errors mapped to `{"error", "message"}` with the right status."""
