"""Manage the plugin set of this environment with pip: install, uninstall, lock, sync.

``environment`` reads what is installed, ``pip`` runs pip (and its dry run) with the
interpreter that runs ksi-host, ``checks`` decides what a change would break,
``preview`` describes the plugins an install would bring (from a staged copy),
``lockfile`` reads and writes ``ksi-plugins.lock``, and ``commands`` and ``sync``
string them together for the CLI.
"""

__all__: list[str] = []
