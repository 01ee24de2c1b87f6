#!/usr/bin/env python3
"""Split the flat ``durable_azstorage/azure/`` into layered sub-packages (issue 14).

Run at the root of a checkout (any later main), then check and commit:

    python3 tools/relayout_azure.py && mypy && lint-imports

What it does, each step idempotent (a second run changes nothing):

1. ``git mv`` every module of ``MOVES`` to its sub-package (renaming where the old name
   said nothing, e.g. ``management`` -> ``tracking/history_admin``), and writes each
   sub-package's ``__init__.py`` (its docstring says what lives there);
2. rewrites every reference to a moved module in ``durable_azstorage/``, ``tests/``,
   ``examples/``, ``docs/``, ``README.md`` and ``pyproject.toml``: dotted names
   (``durable_azstorage.azure.poison``, also inside strings and docstrings), file paths
   (``durable_azstorage/azure/poison.py``, ``azure/poison.py``), short docstring names
   (``azure.poison``), ``from durable_azstorage.azure import naming``, and ``poison``
   written between double back-quotes inside ``azure/`` docstrings; renames the classes in
   ``CLASS_RENAMES`` everywhere;
3. adds the import-linter contract that keeps the sub-packages' order;
4. rewrites the ``azure/`` line of the README's layout block into the sub-package tree.

Modules it does not know (added to ``azure/`` after it was written) stay where they are and
are listed at the end: give them a place in ``MOVES`` and run it again.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

AZURE = Path("durable_azstorage/azure")
ROOT_PACKAGE = "durable_azstorage.azure"

# Sub-packages, top layer first, each with the docstring of its __init__.py.
PACKAGES: dict[str, str] = {
    "work_items": "Orchestration and activity work items: locks, the checkpoint protocol, the\n"
    "receive loops of the owned partitions and the filter for the messages of an episode.",
    "tracking": "The durable record of instances: History and Instances tables (stores and row\n"
    "formats), the episode log and outbox, the session cache of loaded histories, what an\n"
    "episode implies re-derived from its history, history admin (rewind, stale repair) and\n"
    "the task hub's resources.",
    "messaging": "Queues and what receives from them: control and activity receivers, the\n"
    "deliveries this process caused, the wake-up signal and the poison store.",
    "partitioning": "Who owns which control queue: the lease table, the balancer, the\n"
    "partition manager and the ownership protocol.",
    "storage": "Storage plumbing under everything above: the one place clients are built,\n"
    "retries, request metrics, proxies, naming rules and payload blobs.",
}

# old module -> (sub-package, new module name)
MOVES: dict[str, tuple[str, str]] = {
    # storage plumbing
    "clients": ("storage", "clients"),
    "retry": ("storage", "retry"),
    "metrics": ("storage", "metrics"),
    "naming": ("storage", "naming"),
    "proxies": ("storage", "proxies"),
    "payloads": ("storage", "payloads"),
    # tracking stores
    "history_store": ("tracking", "history_store"),
    "history_rows": ("tracking", "history_rows"),
    "instance_store": ("tracking", "instance_store"),
    "instance_rows": ("tracking", "instance_rows"),
    "episode_log": ("tracking", "episode_log"),
    "outbox": ("tracking", "outbox"),
    "sessions": ("tracking", "sessions"),
    "taskhub": ("tracking", "taskhub"),
    "outbound": ("tracking", "history_derivation"),  # vs model.outbound (the rules)
    "management": ("tracking", "history_admin"),  # vs client.management
    # messaging
    "queues": ("messaging", "queues"),
    "control_receiver": ("messaging", "control_receiver"),
    "activity_receiver": ("messaging", "activity_receiver"),
    "deliveries": ("messaging", "deliveries"),
    "wakeup": ("messaging", "wakeup"),
    "poison": ("messaging", "poison_store"),  # vs worker.poison and cli.poison
    # partitioning
    "balancer": ("partitioning", "balancer"),
    "lease_table": ("partitioning", "lease_table"),
    "partitions": ("partitioning", "manager"),
    "ownership": ("partitioning", "ownership"),
    # work items
    "checkpoint": ("work_items", "checkpoint"),
    "orchestration_items": ("work_items", "orchestration_locks"),
    "activity_items": ("work_items", "activity_locks"),
    "partition_receivers": ("work_items", "partition_receivers"),
    "message_filter": ("work_items", "message_filter"),
}

# Modules that stay at the top of azure/: the public entry points and the hub they open.
STAY = {"__init__", "provider", "settings", "hub"}

# Plural collaborators that read like the protocol's work-item types.
CLASS_RENAMES = {
    "OrchestrationWorkItems": "OrchestrationLocks",  # vs backend.protocol.OrchestrationWorkItem
    "ActivityWorkItems": "ActivityLocks",  # vs backend.protocol.ActivityWorkItem
}

REWRITE_UNDER = ("durable_azstorage", "tests", "examples", "docs")
REWRITE_FILES = ("README.md", "pyproject.toml")
MAX_LINE = 100
TEXT_SUFFIXES = {".py", ".md", ".toml", ".rst", ".txt", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".html"}

CONTRACT_NAME = "Azure sub-packages point down"
CONTRACT = f'''
[[tool.importlinter.contracts]]
name = "{CONTRACT_NAME}"
type = "layers"
containers = ["{ROOT_PACKAGE}"]
layers = [
    "work_items",
    "(hub)",  # optional: a checkout without the HubLifecycle wiring
    "tracking | messaging | partitioning",
    "storage",
]
ignore_imports = [
    # create_backend() builds the backend its settings describe: a factory's deferred import
    "{ROOT_PACKAGE}.settings -> {ROOT_PACKAGE}.provider",
]
'''

README_TREE = """\
  azure/          Azure Storage; `provider` (AzureStorageBackend), `settings`, and `hub` (the
                  opened stores and queues, the lifecycle) on top of, layer by layer:
    work_items/     orchestration/activity locks, the checkpoint protocol, partition receivers
    tracking/       History/Instances stores and rows, episode log, outbox, session cache,
                    history derivation (recovery), history admin (rewind, stale repair), task hub
    messaging/      queues, control/activity receivers, self-caused deliveries, wake-up,
                    poison store
    partitioning/   lease table, balancer, partition manager, ownership
    storage/        clients, retries, request metrics, proxies, naming, payload blobs
"""


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def new_dotted(old: str) -> str:
    package, module = MOVES[old]
    return f"{package}.{module}"


def move_modules() -> None:
    for package, doc in PACKAGES.items():
        init = AZURE / package / "__init__.py"
        if not init.exists():
            init.parent.mkdir(exist_ok=True)
            init.write_text(f'"""{doc}"""\n')
            git("add", str(init))
    for old, (package, module) in MOVES.items():
        source, target = AZURE / f"{old}.py", AZURE / package / f"{module}.py"
        if source.exists() and target.exists():
            sys.exit(f"both {source} and {target} exist: merge them by hand, then re-run")
        if source.exists():
            git("mv", str(source), str(target))
            print(f"moved {source} -> {target}")


def patterns() -> list[tuple[re.Pattern[str], Callable[[re.Match[str]], str]]]:
    names = "|".join(sorted(MOVES, key=len, reverse=True))
    dotted = ROOT_PACKAGE.replace(".", r"\.")
    slashed = ROOT_PACKAGE.replace(".", "/")

    def to_dotted(match: re.Match[str]) -> str:
        return f"{match.group(1)}{new_dotted(match.group(2))}"

    def to_path(match: re.Match[str]) -> str:
        return f"{match.group(1)}{new_dotted(match.group(2)).replace('.', '/')}.py"

    return [
        (re.compile(rf"({dotted}\.)({names})\b"), to_dotted),
        (re.compile(rf"({slashed}/)({names})\.py\b"), to_path),
        (re.compile(rf"(?<![\w./])(azure/)({names})\.py\b"), to_path),
        (re.compile(rf"(?<![\w./])(azure\.)({names})\b"), to_dotted),
    ]


def rewrite_from_imports(text: str, path: Path) -> str:
    """``from durable_azstorage.azure import naming`` -> ``from ...azure.storage import naming``."""

    def one(match: re.Match[str]) -> str:
        indent, name = match.group(1), match.group(2)
        if name not in MOVES:
            return match.group(0)
        package, module = MOVES[name]
        alias = f" as {name}" if module != name else ""
        if alias:
            print(f"{path}: kept the old name as an alias: import {module}{alias}; consider renaming")
        return f"{indent}from {ROOT_PACKAGE}.{package} import {module}{alias}"

    pattern = re.compile(rf"^([ \t]*)from {re.escape(ROOT_PACKAGE)} import (\w+)[ \t]*$", re.M)
    text = pattern.sub(one, text)
    if re.search(rf"from {re.escape(ROOT_PACKAGE)} import \(", text):
        print(f"{path}: a parenthesised `from {ROOT_PACKAGE} import (...)`: rewrite it by hand")
    return text


def rewrite_backquoted(text: str) -> str:
    """Inside azure/: ``poison`` / ``outbound.derive_outbound`` name a module by itself."""
    renamed = {old: module for old, (_, module) in MOVES.items() if module != old}
    names = "|".join(sorted(renamed, key=len, reverse=True))
    return re.sub(rf"(?<=``)({names})(?=``|\.\w)", lambda m: renamed[m.group(1)], text)


def fit_lines(text: str) -> str:
    """Keep rewritten lines within ``MAX_LINE``: wrap a long ``from x import a, b`` in
    parentheses and shorten a ``# --- section ---`` banner; other long lines are reported."""

    def wrap(match: re.Match[str]) -> str:
        line = match.group(0)
        if len(line) <= MAX_LINE:
            return line
        indent, module, names = match.group(1), match.group(2), match.group(3).split(", ")
        body = "".join(f"{indent}    {name},\n" for name in names)
        return f"{indent}from {module} import (\n{body}{indent})"

    def banner(match: re.Match[str]) -> str:
        line = match.group(0)
        excess = len(line) - MAX_LINE
        if excess <= 0 or len(match.group(2)) - excess < 3:
            return line
        return match.group(1) + "-" * (len(match.group(2)) - excess)

    text = re.sub(r"^([ \t]*)from ([\w.]+) import ([\w, ]+)$", wrap, text, flags=re.M)
    return re.sub(r"^(\s*# -+ .* )(-+)$", banner, text, flags=re.M)


def sort_imports(text: str) -> str:
    """Re-sort each run of one-line ``from durable_azstorage... import`` statements (their
    module names changed, so their order did); parenthesised imports end a run."""
    single = re.compile(r"^from durable_azstorage[\w.]* import [^(\n]*$")
    out: list[str] = []
    run: list[str] = []
    lines = text.split("\n")
    for line in lines + [""]:
        if single.match(line):
            run.append(line)
            continue
        out.extend(sorted(run, key=lambda l: l.split(" import ")[0]))
        run = []
        out.append(line)
    return "\n".join(out[:-1])


def rewrite_text() -> None:
    files = [Path(p) for p in git("ls-files", *REWRITE_UNDER).splitlines()]
    files += [Path(p) for p in REWRITE_FILES if Path(p).exists()]
    files += [p for p in AZURE.rglob("*.py")]  # moved files not yet known to ls-files' paths
    compiled = patterns()
    classes = re.compile(rf"\b({'|'.join(CLASS_RENAMES)})\b")
    for path in sorted(set(files)):
        if path.suffix not in TEXT_SUFFIXES or not path.is_file():
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        new = rewrite_from_imports(text, path) if path.suffix == ".py" else text
        for pattern, replacement in compiled:
            new = pattern.sub(replacement, new)
        new = classes.sub(lambda m: CLASS_RENAMES[m.group(1)], new)
        if path.is_relative_to(AZURE):
            new = rewrite_backquoted(new)
        if new != text:
            if path.suffix == ".py":
                new = fit_lines(sort_imports(new))
            path.write_text(new)
            print(f"rewrote {path}")
            old_lines = set(text.splitlines())
            for number, line in enumerate(new.splitlines(), 1):
                if len(line) > MAX_LINE and line not in old_lines:
                    print(f"  {path}:{number}: longer than {MAX_LINE} characters: wrap it")


def add_contract() -> None:
    pyproject = Path("pyproject.toml")
    text = pyproject.read_text()
    if CONTRACT_NAME in text:
        return
    anchor = '[[tool.importlinter.contracts]]\nname = "Only the azure layer imports the Azure SDK"'
    if anchor in text:
        text = text.replace(anchor, CONTRACT.lstrip("\n") + "\n" + anchor, 1)
    else:
        text = text.rstrip("\n") + "\n" + CONTRACT
    pyproject.write_text(text)
    print(f"added the import-linter contract {CONTRACT_NAME!r}")


def update_readme() -> None:
    readme = Path("README.md")
    if not readme.exists():
        return
    text = readme.read_text()
    if "    work_items/" in text:
        return
    pattern = re.compile(r"^  azure/ .*\n(?:^ {10,}\S.*\n)*", re.M)
    if pattern.search(text) is None:
        print("README.md: no `  azure/` line in the layout block; describe the sub-packages by hand")
        return
    readme.write_text(pattern.sub(README_TREE, text, count=1))
    print("rewrote the azure/ entry of README.md's layout block")


def report_unplaced() -> None:
    unplaced = sorted(p.stem for p in AZURE.glob("*.py") if p.stem not in STAY)
    if unplaced:
        print("not placed in a sub-package (add them to MOVES and re-run): " + ", ".join(unplaced))


def main() -> None:
    if not AZURE.is_dir():
        sys.exit(f"run at the repository root: {AZURE} not found")
    move_modules()
    rewrite_text()
    add_contract()
    update_readme()
    report_unplaced()


if __name__ == "__main__":
    main()
