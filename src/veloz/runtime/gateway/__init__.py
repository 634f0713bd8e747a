"""`veloz gateway`: a stateless replica serving the API and the streams for one engine,
from the engine's Redis stream and its HTTP API (docs/operations/scaling.md)."""
