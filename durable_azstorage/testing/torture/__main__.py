"""``python -m durable_azstorage.testing.torture --seeds N [--seed S] [--backend memory|azurite]``.

Runs seeds ``S .. S+N-1`` (default S=0), prints totals (seeds/s, faults by kind, violations by
invariant with their seeds) and, for each failing seed, the violations and a minimal trace.
Exits 1 when any seed violated an invariant.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time

from durable_azstorage.testing.torture import Options, Totals, run_seed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m durable_azstorage.testing.torture", description=__doc__
    )
    parser.add_argument("--seeds", type=int, default=1, help="how many seeds to run (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the first seed (default 0)")
    parser.add_argument("--backend", choices=("memory", "azurite"), default="memory")
    parser.add_argument("--no-faults", action="store_true", help="the fault-free reference run")
    parser.add_argument(
        "--no-stale-starts",
        action="store_true",
        help="do not duplicate ExecutionStarted messages",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="print the full trace of failing seeds"
    )
    parser.add_argument("--show", type=int, default=5, help="failing seeds to describe (default 5)")
    return parser


async def _run(args: argparse.Namespace) -> Totals:
    options = Options(faults=not args.no_faults, stale_starts=not args.no_stale_starts)
    if args.backend == "azurite":
        from durable_azstorage.testing.torture.azurite import azurite_options

        with azurite_options(options) as on_azurite:
            return await _seeds(args, on_azurite)
    return await _seeds(args, options)


async def _seeds(args: argparse.Namespace, options: Options) -> Totals:
    totals = Totals()
    for seed in range(args.seed, args.seed + args.seeds):
        result = await run_seed(seed, options)
        totals.add(result)
        if not result.ok and len(totals.failed) <= args.show:
            print(result.describe(), flush=True)
            if args.verbose:
                print("\n".join(f"    {line}" for line in result.trace))
    return totals


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.CRITICAL)
    logging.getLogger("durable_azstorage").setLevel(logging.CRITICAL)
    started = time.monotonic()
    totals = asyncio.run(_run(args))
    print(totals.describe(time.monotonic() - started))
    return 1 if totals.failed else 0


if __name__ == "__main__":
    sys.exit(main())
