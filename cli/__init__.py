"""The ``biodiscover`` command line (composition root); ``main`` is the entry point."""
