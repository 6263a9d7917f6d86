"""The compiled part of the package; everything else is declared in pyproject.toml.

``_csvscan`` reads per-chunk CSV statistics in one pass (see
``synapsenet/services/dataversion/csv_scan.py``); ``_cuts`` cuts files into chunks and
checks and hashes the chunks a guided cut expects (see
``synapsenet/services/dataversion/stream_cutter.py``). Building them needs a C compiler and
the Python headers.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "synapsenet.services.dataversion._csvscan",
            sources=["src/synapsenet/services/dataversion/_csvscan.c"],
            depends=["src/synapsenet/services/dataversion/_csvscan_pow10.h"],
            extra_compile_args=["-Wall", "-Wextra"],
        ),
        Extension(
            "synapsenet.services.dataversion._cuts",
            sources=["src/synapsenet/services/dataversion/_cuts.c"],
            extra_compile_args=["-Wall", "-Wextra", "-O3"],
        ),
    ]
)
