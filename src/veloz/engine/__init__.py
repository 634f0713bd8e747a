"""The kernel: wiring, clock, event bus, lifecycle and the EngineClient facade."""
