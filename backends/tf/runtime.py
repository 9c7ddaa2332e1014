"""TensorFlow's process-wide runtime settings, which the tf backend makes before TF starts.

TF fixes its thread pools and each GPU's memory allocator when its runtime starts (the first
op or tensor), for the whole process. Asked for before that, a setting is made. Asked for
again with the value in force (a sweep's trials that share a Ray worker process all ask for
the same), nothing happens. Asked for afterwards with another value (e.g. a user's Keras model
built before the backend, which starts TF), TF cannot change it: one RuntimeWarning line says
so and the process keeps what it has.
"""

from __future__ import annotations

import warnings

import numpy as np

from backends.tf import tf_import

tf, keras = tf_import()


def set_threads(threads: int | None) -> None:
    """TF's intra-op and inter-op threads for this process (None: leave TF's defaults, every
    core). Both pools are bounded: a trial given N CPUs (`mind sweep --cpus-per-trial`) that
    bounded only the threads inside an op would still run as many ops at once as the machine
    has cores, taking its neighbours' CPUs."""
    if threads is None:
        return
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ValueError(f"threads must be a positive whole number or None, got {threads!r}")
    threads = int(threads)
    threading = tf.config.threading
    kept = []
    for pool, get, set_ in [
            ("intra-op", threading.get_intra_op_parallelism_threads,
             threading.set_intra_op_parallelism_threads),
            ("inter-op", threading.get_inter_op_parallelism_threads,
             threading.set_inter_op_parallelism_threads)]:
        current = get()
        if current == threads:
            continue
        try:
            set_(threads)
        except RuntimeError:  # "cannot be modified after initialization"
            kept.append(f"{current} {pool} threads" if current else f"its default {pool} threads")
    if kept:
        warnings.warn(f"threads={threads} ignored: TensorFlow already started in this process "
                      f"with {' and '.join(kept)}, which it keeps until the process ends",
                      RuntimeWarning, stacklevel=3)


def thread_counts() -> dict[str, int]:
    """TF's intra-op and inter-op pools as set (0: never set, TF chooses, about one per core)."""
    threading = tf.config.threading
    return {"intra_op": threading.get_intra_op_parallelism_threads(),
            "inter_op": threading.get_inter_op_parallelism_threads()}


def enable_memory_growth() -> None:
    """Memory growth on every visible GPU: TF then takes GPU memory as it needs it, instead of
    nearly all of it when it starts, so that two processes can share a GPU (`mind sweep
    --gpus-per-trial 0.5`: without it the second trial on a GPU fails to allocate)."""
    failed = []
    for gpu in tf.config.list_physical_devices("GPU"):
        if tf.config.experimental.get_memory_growth(gpu):
            continue
        try:
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:  # "Physical devices cannot be modified after being initialized"
            failed.append(gpu.name)
    if failed:
        warnings.warn(f"memory growth not enabled on {', '.join(failed)}: TensorFlow already "
                      "started in this process and keeps its GPU memory until the process ends; "
                      "another process on the same GPU may fail to allocate (set "
                      "TF_FORCE_GPU_ALLOW_GROWTH=true before starting Python)",
                      RuntimeWarning, stacklevel=3)
