"""The ``openkms`` command line: ``serve``, ``admin …`` and ``audit …``."""
