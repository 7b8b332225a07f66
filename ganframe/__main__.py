"""``python -m ganframe`` is the ``ganframe`` command (also under torchrun)."""

from ganframe.cli import main

main()
