"""Reading run folders back: ``ganframe report`` (one self-contained HTML file per run or
comparison) and ``ganframe runs`` (a table of the runs under a folder).

:mod:`.collect` reads a run folder without torch and without trusting it to be complete (a run
may still be writing it, or have been killed mid-write); :mod:`.plots` draws with matplotlib
(imported lazily); :mod:`.html` assembles the page; :mod:`.listing` makes the ``runs`` table;
:mod:`.commands` are the command-line faces, registered by
:mod:`ganframe.builtin.report_plugin`.
"""
