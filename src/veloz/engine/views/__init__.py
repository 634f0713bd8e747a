"""The facade's answers: the Structs `EngineClient` returns and every transport shows
(REST bodies, SSE/WebSocket messages, stdio events). One shape per resource, with the
model's field names; where a shape must differ from the model it is converted with
`msgspec.convert(..., from_attributes=True)`, never copied field by field."""
