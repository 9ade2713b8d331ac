"""``python -m encore``: the command line (``encore.cli``)."""

from encore.cli import main

main()
