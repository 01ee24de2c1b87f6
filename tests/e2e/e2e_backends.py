"""The backends an e2e module runs on when it parametrises the ``storage`` fixture:

    pytestmark = pytest.mark.parametrize("storage", BACKENDS, indirect=True)

(a module, not conftest: importing from conftest breaks when several test folders run).
"""

from __future__ import annotations

import pytest

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("azurite", id="azurite", marks=pytest.mark.azurite),
]
