"""``python -m cvkit``: the same as the ``cvkit`` command."""

from cvkit.cli import main

main()
