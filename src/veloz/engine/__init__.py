"""The kernel: the synchronous trading core and the ports it calls, the event bus, and the
EngineClient facade with its views."""
