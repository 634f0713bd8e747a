"""Streams: Server-Sent Events and WebSockets."""

from litestar.types import ControllerRouterHandler

stream_routes: list[ControllerRouterHandler] = []
