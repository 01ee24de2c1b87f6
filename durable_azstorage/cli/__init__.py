"""The ``durable-azstorage`` command line (``python -m durable_azstorage``).

``app.py`` assembles the top-level typer app; each command group lives in its own module
(``hub.py``; later ``instances.py``, ``worker.py``, ``bench.py``) exposing a ``typer.Typer``
named ``app`` that ``app.py`` registers.
"""
