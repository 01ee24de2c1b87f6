"""The shared conformance suite (tests/conformance) on AzureStorageBackend against Azurite.

The test functions are imported from the suite unchanged; the ``harness`` fixture of this
folder (``conftest.azurite_harness``) gives them an Azure backend on a fresh task hub, with
short visibility timeouts so that lock expiry takes seconds, and a second backend as ``peer``.
"""

from __future__ import annotations

import pytest

from conformance.test_conformance_activities import *  # noqa: F401,F403
from conformance.test_conformance_checkpoint import *  # noqa: F401,F403
from conformance.test_conformance_crash_recovery import *  # noqa: F401,F403
from conformance.test_conformance_identifiers import *  # noqa: F401,F403
from conformance.test_conformance_instances import *  # noqa: F401,F403
from conformance.test_conformance_orchestration_items import *  # noqa: F401,F403
from conformance.test_conformance_task_hub import *  # noqa: F401,F403

pytestmark = pytest.mark.azurite
