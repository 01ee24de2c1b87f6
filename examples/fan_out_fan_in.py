"""Fan-out/fan-in: count the words of many lines in parallel activities, then add them up.

Run: python examples/fan_out_fan_in.py
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from durable_azstorage import ActivityContext, OrchestrationContext, when_all
from durable_azstorage.testing.local import local_runtime

POEM = """\
Two roads diverged in a yellow wood,
And sorry I could not travel both
And be one traveler, long I stood
And looked down one as far as I could
To where it bent in the undergrowth;"""


def count_words(ctx: ActivityContext, line: str) -> int:
    return len(line.split())


def word_count(ctx: OrchestrationContext, text: str) -> Generator[Any, Any, dict[str, int]]:
    lines = text.splitlines()
    counts = yield when_all([ctx.call_activity(count_words, input=line) for line in lines])
    return {"lines": len(lines), "words": sum(counts)}


def main() -> None:
    with local_runtime(
        task_hub="fanoutfanin", orchestrators=[word_count], activities=[count_words]
    ) as client:
        instance_id = client.schedule_new_orchestration(word_count, input=POEM)
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        state.raise_if_failed()
        print(f"{instance_id}: {state.get_output()}")


if __name__ == "__main__":
    main()
