"""The results store: what is on disk under the results root, and nothing that trains.

- ``rows``: the layout (``RunStore``), the row type and status words, reading and writing rows
- ``atomic``: atomic file writes (temporary file, fsync, rename)
- ``locks``: the run lock (one process trains a run at a time)
- ``importing``: ``augbench rows import`` (rows made elsewhere into the store)
- ``collect``: rows as a pandas frame, ``augbench collect``

Imports nothing above it: the training layers (``augbench.train``, ``augbench.run``) write through it.
"""
