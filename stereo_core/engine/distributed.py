"""Scenes converted on Ray: one worker (an actor holding its models) per GPU, or per few CPU cores.

The tasks are scenes.py's (`SceneWork.tasks`), run by `SceneWork.run` on the workers exactly as in
one process, over the work folder, which must be on storage every worker reaches (with the source,
the depth video and the models, at the same paths on every machine). A worker that dies mid-task
(killed, out of memory, its machine gone) has its task given to another worker, which continues
from the last finished chunk in the store; a replacement worker is started where Ray finds room.

Without an address a local Ray is started for the run, bound to the loopback address only (see
docs/scale.md); "auto" or an address joins a running cluster.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..errors import StereoInputError
from .pipeline import Models, Reporter
from .scenes import SceneWork, Task, TaskResult

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# Ray's own switch for a single-machine session: its services bind to 127.0.0.1, not the machine's
# network address. Read when ray is imported, so it is set before.
_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
# Our tasks pass paths and settings, never frames: a small object store is plenty.
_OBJECT_STORE_BYTES = 128 * 1024 * 1024
# A replacement worker that Ray cannot place for this long (the cluster shrank) ends the run.
START_TIMEOUT_S = 600.0


def import_ray(local: bool):
    """Ray, imported so that a local session stays on the loopback address."""
    if local:
        os.environ[_LOCAL_ONLY] = "0"
    try:
        import ray
    except ImportError as error:
        raise StereoInputError("--ray needs Ray: pip install 'stereocrafter-3d[ray]' (or pip install ray).") from error
    if local:
        from ray._private import ray_constants

        # Imported earlier (by the caller) without the switch: it is read from here when Ray starts.
        ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


@dataclass
class WorkerSpec:
    """How a worker makes its models and picks its device, and the torch thread count (results on the
    CPU depend on it: every worker uses the driver's, so they equal a one-process run's)."""

    models: Callable[[torch.device], Models]
    device: Callable[[], torch.device]
    threads: int


class SceneWorker:
    """A Ray actor: loads its models once (lazily, as a stage needs them) and runs tasks one at a time."""

    def __init__(self, spec: WorkerSpec):
        torch.set_num_threads(spec.threads)
        self.device = spec.device()
        self.models = spec.models(self.device)

    def ready(self) -> dict:
        return {"host": socket.gethostname(), "pid": os.getpid(), "device": str(self.device)}

    def run(self, work: SceneWork, task: Task) -> TaskResult:
        return work.run(task, self.models, self.device, Reporter())


class RaySession:
    """A Ray connection for a run: a new local session (loopback only) without an address, else the
    cluster at `address` ("auto": the one this machine belongs to). Joins one already open in this process."""

    def __init__(self, address: str | None = None):
        self.address = address
        self.ray = None
        self._owned = False

    def open(self):
        if self.ray is not None:
            return self.ray
        local = self.address is None
        ray = import_ray(local)
        if not ray.is_initialized():
            # The workers run this very stereo_core (shipped by Ray), whatever is installed on their machines.
            runtime_env = {"py_modules": [str(Path(__file__).resolve().parents[1])]}
            if local:
                runtime_env["env_vars"] = {_LOCAL_ONLY: "0"}
                ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                         object_store_memory=_OBJECT_STORE_BYTES, runtime_env=runtime_env)
            else:
                try:
                    ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                             runtime_env=runtime_env)
                except (ConnectionError, ValueError, RuntimeError) as error:
                    raise StereoInputError(f"Cannot join the Ray cluster at '{self.address}' ({error}). Start it "
                                           f"first (ray start --head on one machine, ray start --address=... on "
                                           f"the others), or give no address for a local run.") from error
            self._owned = True
        self.ray = ray
        if local:
            address = self.node_address()
            if address != LOOPBACK:
                self.close()
                raise StereoInputError(
                    f"The local Ray session listens on {address}, not {LOOPBACK}. Start Python with "
                    f"{_LOCAL_ONLY}=0 set, or give the address of a cluster you run.")
        return ray

    def node_address(self) -> str:
        return self.ray.nodes()[0]["NodeManagerAddress"]

    def close(self) -> None:
        if self.ray is not None and self._owned:
            self.ray.shutdown()
        self.ray, self._owned = None, False


class RayRunner:
    """Runs a SceneWork's tasks on Ray workers (see the module's description). The workers, with their
    loaded models, stay for the next video of a batch until close()."""

    def __init__(self, session: RaySession, spec: WorkerSpec, workers: int | None = None, retries: int = 3):
        self.session, self.spec, self.workers, self.retries = session, spec, workers, retries
        self._worker_class = None
        self._starting: dict = {}  # ready() reference -> (actor, when it was asked for)
        self._idle: list = []

    def _pool(self, ray) -> tuple[int, int]:
        """How many workers to have, and the cluster's GPUs (0: CPU workers)."""
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0))
        if self._worker_class is None:
            options = {"num_gpus": 1} if gpus else {"num_cpus": self.spec.threads}
            self._worker_class = ray.remote(SceneWorker).options(max_restarts=0, max_task_retries=0, **options)
        return self.workers or (gpus if gpus else max(1, int(resources.get("CPU", 1)) // self.spec.threads)), gpus

    def _start_worker(self) -> None:
        actor = self._worker_class.remote(self.spec)
        self._starting[actor.ready.remote()] = (actor, time.monotonic())

    def run(self, work: SceneWork, reporter: Reporter) -> dict[Task, TaskResult]:
        ray = self.session.open()
        tasks = work.tasks()
        count, gpus = self._pool(ray)
        count = min(count, len(tasks))
        while len(self._starting) + len(self._idle) < count:
            self._start_worker()
        reporter.notice(f"Ray: {count} worker{'s' if count != 1 else ''} "
                        f"({'one GPU each' if gpus else f'{self.spec.threads} CPU thread(s) each'}) on "
                        f"{len(ray.nodes())} machine(s), node {self.session.node_address()}")
        shared, lost = ray.put(work), _lost_worker_errors(ray)
        starting, idle = self._starting, self._idle
        busy: dict = {}  # run() reference -> (actor, task)
        failures: dict[Task, int] = {}
        results: dict[Task, TaskResult] = {}
        queued = list(tasks)
        frames = 0
        try:
            with reporter.bar("scenes", work.plan.frames) as bar:
                bar(0, work.plan.frames)
                while len(results) < len(tasks):
                    for task in [task for task in queued if all(need in results for need in tasks[task])]:
                        if not idle:
                            break
                        actor = idle.pop()
                        busy[actor.run.remote(shared, task)] = (actor, task)
                        queued.remove(task)
                    if not busy and not idle and not starting:
                        raise StereoInputError("Every Ray worker has died and none could be started again.")
                    done, _ = ray.wait(list(busy) + list(starting), num_returns=1, timeout=10.0)
                    for reference in done:
                        if reference in starting:
                            actor, _ = starting.pop(reference)
                            try:
                                facts = ray.get(reference)
                            except lost as error:
                                log.warning("A Ray worker could not start (%s).", _first_line(error))
                                continue
                            log.info("Ray worker ready: %s pid %s on %s", facts["host"], facts["pid"], facts["device"])
                            idle.append(actor)
                            continue
                        actor, task = busy.pop(reference)
                        try:
                            result = ray.get(reference)
                        except ray.exceptions.RayTaskError as error:
                            idle.append(actor)
                            if isinstance(error.cause, StereoInputError):  # bad input: its message, not a trace
                                raise StereoInputError(f"{task.describe(work.scenes)}: {error.cause}") from error
                            raise
                        except lost as error:
                            failures[task] = failures.get(task, 0) + 1
                            if failures[task] > self.retries:
                                raise StereoInputError(
                                    f"{task.describe(work.scenes)} failed {failures[task]} times: its worker died "
                                    f"each time ({_first_line(error)}).") from error
                            log.warning("The worker on %s died (%s); the task goes to another worker and continues "
                                        "from its last finished chunk.", task.describe(work.scenes),
                                        _first_line(error))
                            queued.insert(0, task)
                            self._start_worker()
                            continue
                        results[task] = result
                        idle.append(actor)
                        for message in result.notices:
                            reporter.notice(message)
                        frames += work.frames_of(task)
                        bar(frames, work.plan.frames)
                    stuck = [reference for reference, (_, since) in starting.items()
                             if time.monotonic() - since > START_TIMEOUT_S]
                    if stuck and not busy and not idle:
                        raise StereoInputError(f"No Ray worker could be started in {START_TIMEOUT_S:.0f} s: the "
                                               f"cluster has no free {'GPU' if gpus else 'CPU'} for one.")
        finally:
            for actor, _ in busy.values():  # still on this video's tasks (it failed or was stopped)
                ray.kill(actor)
        return results

    def close(self) -> None:
        if self.session.ray is not None:
            for actor in self._idle + [actor for actor, _ in self._starting.values()]:
                self.session.ray.kill(actor)
        self._idle, self._starting = [], {}
        self.session.close()


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _lost_worker_errors(ray) -> tuple[type[BaseException], ...]:
    """What ray.get raises when the worker process or its machine went away (not when the task failed)."""
    errors = ray.exceptions
    return (errors.RayActorError, errors.WorkerCrashedError, errors.OutOfMemoryError, errors.NodeDiedError)


__all__ = ["LOOPBACK", "RayRunner", "RaySession", "SceneWorker", "WorkerSpec", "import_ray"]
