"""Tools for people who work on ganframe or write plugins, not for training runs.

``docgen`` writes the generated reference pages of ``docs/`` and ``scaffold`` writes new plugin
projects (``ganframe new-plugin``). They live apart from the core so the layers stay clear: the
core never imports this package, and it may import anything of the core (it documents and
templates the core). Nothing here imports torch at module level.
"""
