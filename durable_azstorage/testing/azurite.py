"""Start and stop a local Azurite (the Azure Storage emulator) for tests, examples and the CLI.

``Azurite`` runs the npm package pinned in the repository's ``azurite/`` folder
(``package.json`` + ``package-lock.json``; installed with ``npm ci --prefix azurite`` when
``node_modules`` is missing). When the package is installed outside a checkout, it uses
``$XDG_CACHE_HOME/durable-azstorage/azurite-<version>`` (default ``~/.cache/...``) with the same
pinned ``package.json`` (no lock file there, so ``npm install``). ``DURABLE_AZSTORAGE_AZURITE_DIR``
overrides the folder.

Each instance binds 127.0.0.1 on free ports and stores data in a fresh temporary folder
(``--location``; in-memory only on request: Azurite's in-memory mode stalls for minutes in
garbage collection after heavy message churn, ARCHITECTURE.md §7), so several can run at
once. Flags: ``--skipApiVersionCheck`` (the Python SDKs send newer API versions than 3.37
knows), ``--disableTelemetry``, ``--silent`` (no access log), keep-alive timeouts of 120 s
instead of 5 s (fewer reconnects; a request racing the server's idle close would fail with a
reset — no failure was observed with 5 s, this only narrows the window), and no ``--loose``
(unsupported headers should fail loudly rather than be silently ignored). ``node azurite.js``
runs directly (no npx wrapper) in its own session and is stopped by process group: SIGTERM,
then SIGKILL after a grace period. Run this way, 3.37.0 exits on SIGTERM at once (pinned in
``tests/azure/test_azurite_launcher.py``); the escalation covers wrappers such as npx that
have been seen to ignore SIGTERM/SIGINT when detached.

Where no Node.js is installed but a Docker engine answers, the testcontainers
``AzuriteContainer`` is used instead (``mode="docker"`` forces it, ``mode="npm"`` forbids it;
env ``DURABLE_AZSTORAGE_AZURITE_MODE``). The Docker probe is a silent socket ping.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

AZURITE_VERSION = "3.37.0"
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
SERVICES = ("blob", "queue", "table")
_ENTRY = Path("node_modules", "azurite", "dist", "src", "azurite.js")


class AzuriteError(RuntimeError):
    """Azurite could not be installed or started; the message says why and what to do."""


def connection_string(host: str, ports: dict[str, int]) -> str:
    """The connection string of the well-known emulator account at ``host:ports``."""
    endpoints = "".join(
        f"{svc.capitalize()}Endpoint=http://{host}:{ports[svc]}/{ACCOUNT_NAME};" for svc in SERVICES
    )
    return (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        + endpoints
    )


def find_azurite_dir(checkout: Path | None = None) -> Path:
    """The folder whose ``package.json`` pins Azurite (see the module docstring).

    ``checkout`` is the repository's ``azurite/`` folder (default: found from this file).
    """
    override = os.environ.get("DURABLE_AZSTORAGE_AZURITE_DIR")
    if override:
        return Path(override)
    if checkout is None:
        checkout = Path(__file__).resolve().parents[2] / "azurite"
    if (checkout / "package.json").is_file():
        return checkout
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    folder = cache / "durable-azstorage" / f"azurite-{AZURITE_VERSION}"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {
        "name": "durable-azstorage-azurite",
        "private": True,
        "dependencies": {"azurite": AZURITE_VERSION},
    }
    (folder / "package.json").write_text(json.dumps(manifest, indent=2))
    return folder


def ensure_installed(folder: Path) -> Path:
    """Install the pinned Azurite into ``folder`` if missing; return its entry script.

    A file lock serialises concurrent installs (parallel test runs on a fresh checkout).
    """
    entry = folder / _ENTRY
    if entry.is_file():
        return entry
    npm = shutil.which("npm")
    if npm is None:
        raise AzuriteError("Azurite is not installed and npm is not on PATH: install Node.js >= 20")
    with _file_lock(folder / ".install.lock"):
        if entry.is_file():
            return entry
        verb = "ci" if (folder / "package-lock.json").is_file() else "install"
        proc = subprocess.run(
            [npm, verb, "--prefix", str(folder), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0 or not entry.is_file():
            raise AzuriteError(
                f"`npm {verb} --prefix {folder}` failed (exit {proc.returncode}):\n"
                + proc.stderr[-3000:]
            )
    return entry


@contextlib.contextmanager
def _file_lock(path: Path) -> Any:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock, npm copes with one install
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def docker_available(timeout: float = 0.3) -> bool:
    """True if a Docker engine answers a ping on its local socket (quick and silent)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return bool(os.environ.get("DOCKER_HOST"))  # tcp engines: trust the user's setting
    path = host[len("unix://") :]
    if not os.path.exists(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
            return sock.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via http_proxy


def _answers(port: int) -> bool:
    """Any HTTP response (even 400/403) means the service is up."""
    try:
        _NO_PROXY.open(f"http://127.0.0.1:{port}/{ACCOUNT_NAME}?comp=list", timeout=1)
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False
    return True


class Azurite:
    """One Azurite process (or container). Use as a context manager or ``start()``/``stop()``.

    Args:
        in_memory: use ``--inMemoryPersistence`` instead of a temporary ``--location``.
        location: keep data in this folder (not deleted on stop) instead of a temporary one.
        mode: ``"auto"`` (npm if Node.js is installed, else Docker if it answers), ``"npm"``
            or ``"docker"``.
        startup_timeout: seconds to wait until blob, queue and table all answer.
        die_with_parent: (Linux) have the kernel kill Azurite when the thread that started it
            exits, so a SIGKILLed test run or CLI leaves no orphan. Only safe when started from
            a long-lived thread (the main thread); hence off by default.
    """

    def __init__(
        self,
        *,
        in_memory: bool = False,
        location: str | os.PathLike[str] | None = None,
        mode: str | None = None,
        startup_timeout: float = 60.0,
        stop_grace: float = 2.0,
        die_with_parent: bool = False,
    ) -> None:
        self.die_with_parent = die_with_parent
        self.in_memory = in_memory
        self.mode = mode or os.environ.get("DURABLE_AZSTORAGE_AZURITE_MODE", "auto")
        if self.mode not in ("auto", "npm", "docker"):
            raise ValueError(f"mode: must be auto, npm or docker, got {self.mode!r}")
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self._location = Path(location) if location is not None else None
        self._tempdir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._container: Any = None
        self.ports: dict[str, int] = {}
        self._connection_string: str | None = None

    # ------------------------------------------------------------------ public

    @property
    def connection_string(self) -> str:
        if self._connection_string is None:
            raise AzuriteError("Azurite is not running: call start() first")
        return self._connection_string

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> str:
        """Start Azurite, wait until all three services answer, return the connection string."""
        if self._connection_string is not None:
            return self._connection_string
        use_docker = self.mode == "docker" or (
            self.mode == "auto" and shutil.which("node") is None and docker_available()
        )
        try:
            if use_docker:
                self._start_container()
            else:
                self._start_npm()
        except BaseException:
            self.stop()
            raise
        return self.connection_string

    def stop(self) -> None:
        """Stop the process group (SIGTERM, SIGKILL after the grace) and remove temp data."""
        process, self._process = self._process, None
        if process is not None:
            _kill_group(process, self.stop_grace)
        container, self._container = self._container, None
        if container is not None:  # pragma: no cover - needs Docker
            container.stop()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None
        self._connection_string = None

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ npm

    def _start_npm(self) -> None:
        node = shutil.which("node")
        if node is None:
            raise AzuriteError(
                "Node.js is not on PATH and no Docker engine answers: install Node.js >= 20"
            )
        entry = ensure_installed(find_azurite_dir())
        self._tempdir = Path(tempfile.mkdtemp(prefix="azurite-"))
        log_path = self._tempdir / "azurite.log"
        last_error = ""
        for _ in range(3):  # a free port can be taken between probing and binding: retry
            ports = dict(zip(SERVICES, free_ports(3), strict=False))
            args = [node, str(entry), "--skipApiVersionCheck", "--disableTelemetry", "--silent"]
            for svc, port in ports.items():
                args += [
                    f"--{svc}Host",
                    "127.0.0.1",
                    f"--{svc}Port",
                    str(port),
                    f"--{svc}KeepAliveTimeout",
                    "120",
                ]
            if self.in_memory:
                args.append("--inMemoryPersistence")
            else:
                data = self._location or self._tempdir / "data"
                data.mkdir(parents=True, exist_ok=True)
                args += ["--location", str(data)]
            with open(log_path, "ab") as log:
                self._process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent_hook() if self.die_with_parent else None,
                )
            if self._wait_ready(ports):
                self.ports = ports
                self._connection_string = connection_string("127.0.0.1", ports)
                return
            last_error = log_path.read_text(errors="replace")[-3000:]
            _kill_group(self._process, self.stop_grace)
            self._process = None
            if "EADDRINUSE" not in last_error:
                break
        raise AzuriteError(
            f"Azurite did not start within {self.startup_timeout:.0f} s:\n{last_error}"
        )

    def _wait_ready(self, ports: dict[str, int]) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self.startup_timeout
        pending = set(ports.values())
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            pending = {p for p in pending if not _answers(p)}
            if not pending:
                return True
            time.sleep(0.1)
        return False

    # ------------------------------------------------------------------ docker

    def _start_container(self) -> None:  # pragma: no cover - no Docker on the dev machine
        try:  # testcontainers >= 4.1x moved it; the old path still works with a warning
            from testcontainers.community.azurite import AzuriteContainer
        except ImportError:
            try:
                from testcontainers.azurite import AzuriteContainer
            except ImportError as exc:
                raise AzuriteError(
                    "Docker mode needs testcontainers[azurite] (the dev extra)"
                ) from exc
        container = AzuriteContainer(f"mcr.microsoft.com/azure-storage/azurite:{AZURITE_VERSION}")
        container.with_command(
            "azurite --blobHost 0.0.0.0 --queueHost 0.0.0.0 --tableHost 0.0.0.0 "
            "--skipApiVersionCheck --disableTelemetry --silent"
            + (" --inMemoryPersistence" if self.in_memory else " --location /data")
        )
        container.start()
        self._container = container
        self._connection_string = str(container.get_connection_string())


def _die_with_parent_hook() -> Callable[[], None] | None:
    """A preexec hook setting PR_SET_PDEATHSIG=SIGKILL (Linux), or None where unavailable.

    libc is loaded here, in the parent: the hook runs between fork and exec and must not
    import or load anything there.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # pragma: no cover - not Linux/glibc: best effort
        return None

    def hook() -> None:
        prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return hook


def _kill_group(process: subprocess.Popen[bytes], grace: float) -> None:
    """Signal the whole process group we created (start_new_session), escalate to SIGKILL."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
