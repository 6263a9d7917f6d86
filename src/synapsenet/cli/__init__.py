"""The ``synapsenet`` command line."""
