"""Where independent jobs (sweep points) run: a local process pool, or a Dask distributed cluster.

Both executors take the same picklable top-level function of one JSON-able
item and yield one :class:`Outcome` per item, in completion order: its
result, or, once its retries are spent, the one-line error it failed with.
An item is never dropped: it ends as a result or as a failure.

- :class:`LocalExecutor`: ``jobs`` == 1 runs in this process; more run in a
  ``spawn`` process pool (a fresh interpreter per worker, so torch's threads
  never meet fork). A point that raises is run again up to ``retries`` times;
  a worker process that dies breaks the pool, which charges every point it
  was running one attempt and is replaced.
- :class:`DaskExecutor` (``--scheduler ADDRESS``): one ``distributed`` task
  per item, ``Client.submit(..., retries=retries)``; a task that raises is
  rerun by Dask up to ``retries`` times, a task whose worker died is
  rescheduled by the scheduler (up to its ``distributed.scheduler.allowed-failures``,
  3 by default, then ``KilledWorker``). Workers write artefacts themselves,
  so the output directory must be on a filesystem every worker mounts at the
  same path; :meth:`DaskExecutor.prepare` checks that on every worker (and
  that they run this mstbnn version) before any item is sent.

dask and distributed are an optional extra (``pip install 'mstbnn[dask]'``);
only :func:`open_executor` with a scheduler imports them.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from mstbnn import __version__
from mstbnn.errors import UserError

__all__ = ["Outcome", "LocalExecutor", "DaskExecutor", "connect", "open_executor", "one_line",
           "DEFAULT_CONNECT_TIMEOUT"]

DEFAULT_CONNECT_TIMEOUT = 10.0
TOKEN_FILE = ".mstbnn-cluster-token"


@dataclass
class Outcome:
    """One item's end: ``result`` when it succeeded, else ``error`` (one line)."""

    item: Any
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message``, cut to ``limit`` characters: what sweep.json keeps of a failure."""
    text = str(exc).strip().splitlines()
    line = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- local


class LocalExecutor:
    """This process (``jobs`` == 1) or a local ``spawn`` process pool of ``jobs`` workers."""

    def __init__(self, jobs: int = 1):
        self.jobs = int(jobs)

    def prepare(self, out: Path) -> None:
        """Nothing to check: the pool's workers share this machine's filesystem."""

    def map(self, fn: Callable, items: list, retries: int = 0) -> Iterator[Outcome]:
        if self.jobs == 1 or len(items) <= 1:
            yield from self._serial(fn, items, retries)
        else:
            yield from self._pool(fn, items, retries)

    @staticmethod
    def _serial(fn, items, retries):
        for item in items:
            for attempt in range(retries + 1):
                try:
                    result = fn(item)
                except Exception as exc:  # noqa: BLE001 - any failure of one item is that item's, reported
                    if attempt == retries:
                        yield Outcome(item, error=one_line(exc))
                else:
                    yield Outcome(item, result=result)
                    break

    def _pool(self, fn, items, retries):
        import concurrent.futures as cf
        import multiprocessing as mp
        from concurrent.futures.process import BrokenProcessPool

        def new_pool():
            return cf.ProcessPoolExecutor(max_workers=min(self.jobs, len(items)), mp_context=mp.get_context("spawn"))

        pool = new_pool()
        failures = [0] * len(items)
        running = {}

        def submit(i):
            nonlocal pool
            try:
                running[pool.submit(fn, items[i])] = i
            except BrokenProcessPool:  # a worker died: every point it held already failed; start afresh
                pool.shutdown(wait=False, cancel_futures=True)
                pool = new_pool()
                running[pool.submit(fn, items[i])] = i

        try:
            for i in range(len(items)):
                submit(i)
            while running:
                done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        result = fut.result()
                    except Exception as exc:  # noqa: BLE001 - includes BrokenProcessPool (a worker died)
                        failures[i] += 1
                        if failures[i] > retries:
                            yield Outcome(items[i], error=one_line(exc))
                        else:
                            submit(i)
                    else:
                        yield Outcome(items[i], result=result)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- dask


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise UserError("--scheduler needs dask and distributed, which are not installed; "
                        "pip install 'mstbnn[dask]' (the pins of requirements.txt), or run without --scheduler") from None
    return distributed


def _probe(token_path: str, token: str) -> dict:
    """Run on every worker: its mstbnn version and whether it sees the sweep directory (the token file)."""
    import mstbnn

    try:
        seen = Path(token_path).read_text() == token
    except OSError:
        seen = False
    return {"version": mstbnn.__version__, "seen": seen}


def _run_checked(fn: Callable, item, token_path: str, token: str):
    """The task a worker runs: refuse to write artefacts where the client will never see them, then ``fn(item)``."""
    if not _probe(token_path, token)["seen"]:
        import socket

        raise UserError(f"worker on {socket.gethostname()} cannot read {token_path}: the sweep directory must be "
                        "on a filesystem every worker mounts at the same path")
    return fn(item)


class DaskExecutor:
    """One ``distributed`` task per item on the cluster of ``client``."""

    def __init__(self, client, address: str):
        self.client = client
        self.address = address
        self.token_path: Path | None = None
        self.token = uuid.uuid4().hex

    def prepare(self, out: Path) -> None:
        """Every current worker sees ``out`` (a shared filesystem) and runs this mstbnn version; else UserError."""
        self.token_path = Path(out).resolve() / TOKEN_FILE
        from mstbnn.artefact import atomic_write

        atomic_write(self.token_path, self.token)
        try:
            answers = self.client.run(_probe, str(self.token_path), self.token)
            for worker, a in sorted(answers.items()):
                if a["version"] != __version__:
                    raise UserError(f"--scheduler {self.address}: worker {worker} runs mstbnn {a['version']}, this "
                                    f"is {__version__}; install the same version on every worker")
                if not a["seen"]:
                    raise UserError(f"--scheduler {self.address}: worker {worker} cannot read {self.token_path}: "
                                    "the sweep directory (-o) must be on a filesystem every worker mounts at the "
                                    "same path")
        except UserError:
            self._remove_token()
            raise

    def _remove_token(self) -> None:
        if self.token_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.token_path)

    def map(self, fn: Callable, items: list, retries: int = 0) -> Iterator[Outcome]:
        distributed = _import_distributed()
        futures = {}
        for item in items:
            name = item.get("id", "item") if isinstance(item, dict) else "item"
            # Readable keys on the dashboard; the uuid keeps reruns of a point distinct tasks.
            key = f"mstbnn-{getattr(fn, '__name__', 'task')}-{name}-{uuid.uuid4().hex[:8]}"
            fut = self.client.submit(_run_checked, fn, item, str(self.token_path), self.token, key=key,
                                     retries=retries, pure=False)
            futures[fut] = item
        try:
            for fut in distributed.as_completed(list(futures), loop=self.client.loop):
                item = futures.pop(fut)
                try:
                    result = fut.result()
                except Exception as exc:  # noqa: BLE001 - the task's own error, KilledWorker, CancelledError ...
                    yield Outcome(item, error=one_line(exc))
                else:
                    yield Outcome(item, result=result)
                fut.release()
        finally:
            for fut in futures:  # interrupted: do not leave our tasks running on the cluster
                fut.cancel()

    def close(self) -> None:
        self._remove_token()
        with contextlib.suppress(Exception):
            self.client.close()


def connect(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT) -> DaskExecutor:
    """A client of the scheduler at ``address`` with at least one worker, within ``timeout`` s; else UserError."""
    distributed = _import_distributed()
    from distributed.comm import get_address_host_port, parse_address

    # A malformed address is refused before any Client exists (a half-made one complains when collected).
    # Only tcp: mstbnn passes no TLS security settings, and ucx/ws need more packages.
    try:
        scheme, _ = parse_address(address)
        get_address_host_port(address)
        if scheme != "tcp":
            raise ValueError(f"scheme {scheme}:// is not supported, only tcp://")
    except (ValueError, TypeError) as exc:
        raise UserError(f"--scheduler {address!r}: not a scheduler address ({str(exc).splitlines()[0][:200]}); "
                        "give the tcp://HOST:PORT that `dask scheduler` prints") from None
    try:
        client = distributed.Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        text = str(exc).strip().splitlines()
        why = text[0][:200] if text else type(exc).__name__
        raise UserError(f"--scheduler {address}: cannot connect within {timeout:g} s ({why}); start a scheduler "
                        "with `dask scheduler` and give its tcp://HOST:PORT") from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise UserError(f"--scheduler {address}: no worker joined within {timeout:g} s; start workers with "
                        f"`dask worker {address}`") from None
    return DaskExecutor(client, address)


@contextlib.contextmanager
def open_executor(*, jobs: int = 1, scheduler: str | None = None,
                  connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
    """The executor of a run: the Dask cluster at ``scheduler``, else a local pool of ``jobs``."""
    executor = LocalExecutor(jobs) if scheduler is None else connect(scheduler, connect_timeout)
    try:
        yield executor
    finally:
        executor.close()
