"""The middle of the byte flow: received bytes become a partial file, a journal and a staged tree.

    transport ──bytes──► Tee ──► PartialFile (+ Journal: the checkpoints, DESIGN §2)
                          │  └──► whole-file sha256 whose state can be saved (_sha256)
                          └────► zip.ZipStreamParser ──events──► Extractor ──► staging/<key>/ (+ digests)

``_checkpoints`` keeps the checkpoint rules (its module essay), ``_partial`` the journal's format, ``_extract`` the
staged files. The attempt loop that drives them lives in :mod:`wheelstream.fetch`.

Nothing is re-exported here: the cache (``wheelstream._cache``) needs only the journal, and the command's start-up
must not pay for the rest (isal, the writer threads); importers name the module they need.
"""
