"""Helpers shared by the scalelab course notebooks.

Importing this package is cheap and has no side effects: no JVM, MPI runtime, OpenCL context or
Dask cluster starts until a helper such as ``get_spark()`` is called. Import what you need from the
submodules, e.g. ``from scalelab.spark import get_spark``.
"""

__version__ = "0.1.0"
