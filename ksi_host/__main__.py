"""``python -m ksi_host`` is the ``ksi-host`` command."""

from ksi_host._entry import main

main()
