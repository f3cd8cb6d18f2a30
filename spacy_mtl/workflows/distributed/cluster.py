"""A Ray cluster for a run: importing Ray with a clear error, and a local one-machine
cluster."""

import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from ..predict import PredictError

RAY_EXTRA = 'The distributed engine needs Ray Data: pip install "spacy-mtl[distributed]".'
# Ray's switch for one-machine clusters: "0" keeps a new cluster on 127.0.0.1.
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def import_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise PredictError(RAY_EXTRA) from None
    return ray


@contextmanager
def local_cluster(
    num_cpus: int,
    *,
    num_gpus: Optional[int] = None,
    object_store_memory: Optional[int] = None,
    temp_dir: Optional[str] = None,
    quiet: bool = True,
) -> Iterator[Any]:
    """Start a one-machine Ray cluster bound to the loopback interface, and stop it.

    Ray binds a new cluster to the machine's network address so that other nodes can
    join. A local cluster needs no one to join, so it is kept on 127.0.0.1 (through
    Ray's switch for one-machine clusters, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0).
    Its workers run at this process's priority, not Ray's default of 15 lower (nice).

    num_cpus (int): CPUs the cluster may schedule (workers and readers share them).
    num_gpus (Optional[int]): GPUs to offer (None: Ray detects them).
    object_store_memory (Optional[int]): Bytes for the object store (None: Ray's default,
        30% of the memory).
    temp_dir (Optional[str]): Ray's session folder (keep the path short: it holds sockets).
    quiet (bool): Keep the workers' logs out of this process's output.
    YIELDS: The `ray` module, initialised.
    """
    # Both switches are process-wide: they are set for the cluster's lifetime only and put
    # back afterwards, so a later ray.init in this process behaves as Ray's default.
    previous_env = os.environ.get(_LOOPBACK_ENV)
    os.environ[_LOOPBACK_ENV] = "0"  # read by the Ray processes
    constants: Any = None
    previous_flag: Any = None
    try:
        ray = import_ray()
        if ray.is_initialized():
            raise PredictError("Ray is already initialised in this process; shut it down first.")
        constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
        if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
            # The module read the variable when ray was imported; this process may have
            # done that already.
            previous_flag = constants.ENABLE_RAY_CLUSTER
            constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            object_store_memory=object_store_memory,
            include_dashboard=False,
            log_to_driver=not quiet,
            configure_logging=not quiet,
            _temp_dir=temp_dir,
            # Ray lowers its workers' priority by 15 (nice), for machines that serve the
            # cluster alone. This one is shared: at nice 15, beside a busy process, a
            # worker got 3% of a CPU, and a test job ran past its 300-s deadline.
            _system_config={"worker_niceness": 0},
        )
        try:
            yield ray
        finally:
            ray.shutdown()
    finally:
        if previous_env is None:
            os.environ.pop(_LOOPBACK_ENV, None)
        else:
            os.environ[_LOOPBACK_ENV] = previous_env
        if previous_flag is not None:
            constants.ENABLE_RAY_CLUSTER = previous_flag
