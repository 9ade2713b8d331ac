"""``python -m encore``: the command line (``encore.nightly.cli``)."""

from encore.nightly.cli import main

main()
