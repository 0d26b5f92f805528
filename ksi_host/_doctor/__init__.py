"""``ksi-host doctor``: check every plugin without starting one, and print a fix for each flaw.

``diagnose`` runs the stages; ``isolate`` and ``worker`` import plugins in a separate
process; ``outcome`` turns the worker's findings back into plan values; ``checks``
looks at the environment (dist-info, folders, config); ``fixes`` writes the command
for each problem; ``report`` holds the JSON models and the text rendering. This file
imports nothing, so the worker starts without loading the rest.
"""

__all__: list[str] = []
