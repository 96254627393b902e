"""The HTTP entry point: an ASGI application speaking AWS JSON 1.1, and the wiring of its parts."""
