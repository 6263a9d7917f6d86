"""``python -m synapsenet.cli``: the same as the ``synapsenet`` command."""

from synapsenet.cli.main import main

main()
