"""The scenario catalogue: one file per way a TCP conversation dies (see :mod:`lab.inlab.scenario`).

The files are loaded by path, not imported as modules of this package; it is a package so that
the files ship inside an installed ``lab``.
"""
