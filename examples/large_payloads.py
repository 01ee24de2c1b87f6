"""Large payloads: inputs, activity results and outputs of several MiB just work.

Queue messages are limited to 64 KiB and table properties to 64 KiB; anything larger is
gzip-compressed into the task hub's ``-largemessages`` blob container and fetched back
transparently, so the client always returns the real data.

Run: python examples/large_payloads.py
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from typing import Any

from durable_azstorage import ActivityContext, OrchestrationContext
from durable_azstorage.testing.local import local_runtime


def make_report(ctx: ActivityContext, rows: int) -> list[dict[str, Any]]:
    return [{"row": i, "text": f"line {i} " + "x" * 200} for i in range(rows)]


def digest(ctx: ActivityContext, data: list[dict[str, Any]]) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()


def build_report(ctx: OrchestrationContext, rows: int) -> Generator[Any, Any, dict[str, Any]]:
    report = yield ctx.call_activity(make_report, input=rows)  # ~2.5 MiB result
    checksum = yield ctx.call_activity(digest, input=report)  # ~2.5 MiB input
    return {"rows": len(report), "sha256": checksum, "report": report}


def main() -> None:
    with local_runtime(
        task_hub="largepayloads", orchestrators=[build_report], activities=[make_report, digest]
    ) as client:
        instance_id = client.schedule_new_orchestration(build_report, input=10_000)
        state = client.wait_for_orchestration_completion(instance_id, timeout=120)
        state.raise_if_failed()
        output = state.get_output()
        size = len(state.serialized_output or "")
        print(
            f"{instance_id}: {output['rows']} rows, {size / 2**20:.1f} MiB output, "
            f"sha256 {output['sha256'][:16]}..."
        )


if __name__ == "__main__":
    main()
