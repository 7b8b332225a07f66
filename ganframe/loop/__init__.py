"""The training loop and what listens to it.

``trainer`` runs phases of steps and emits events (``events``); the core's callbacks
(``callbacks``, ``guards``) log, sample, evaluate, checkpoint and protect the run; ``snapshot``
and ``resume`` write and check a run's state. Nothing here reads the recipe or the plugin
registry: :mod:`ganframe.assemble` builds the parts. Import-light on purpose (no torch here).
"""
