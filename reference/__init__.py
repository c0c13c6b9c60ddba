"""Reference coordinator and participant of the persistent asynchronous multicast system.

Run as `python -m reference.coordinator CONFIG` and `python -m reference.participant CONFIG`;
the wire protocol is documented in `reference/PROTOCOL.md`.
"""
