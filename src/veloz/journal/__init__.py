"""The order write-ahead log: record framing, the group-commit writer, recovery and replay,
checkpoints, rotation and retention, verification. Knows bytes and entry types, not HTTP
and not the meaning of payloads (the engine encodes and decodes those through veloz.codec)."""
