"""The torture test: seeded, deterministic fault injection against the real engine code.

``python -m durable_azstorage.testing.torture --seeds N`` runs N seeds (see ``__main__``);
``run_seed(seed)`` runs one and returns its ``SeedResult``. ``world`` holds the simulation,
``programs`` the random orchestrations and their expected outputs, ``faults`` what is
injected, ``invariants`` what is checked and ``report`` how results are told.
"""

from __future__ import annotations

from durable_azstorage.testing.torture.report import SeedResult, Totals
from durable_azstorage.testing.torture.world import Options, World


async def run_seed(seed: int, options: Options | None = None) -> SeedResult:
    """Run one seed to quiescence and check every invariant."""
    return await World(seed, options).run()


__all__ = ["Options", "SeedResult", "Totals", "World", "run_seed"]
