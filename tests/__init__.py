"""openkms test suite."""
