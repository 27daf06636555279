"""Preloaded into every Dask worker of a test cluster (`dask worker --preload <this file>`):
the first worker to start a run of seed $DIES_ONCE_SEED dies at once, as if killed (os._exit,
no clean-up, no answer to the scheduler), after writing its address into $DIES_ONCE_MARKER.
The marker is created exclusively, so exactly one run of the sweep loses its worker, once."""

import os

from scratchnet.study import sweep
from scratchnet.study.classifier import train_run as _train_run  # the real one (dask may import this twice)


def _dies_once(spec, splits, key, worker):
    if spec.seed == int(os.environ["DIES_ONCE_SEED"]):
        try:
            fd = os.open(os.environ["DIES_ONCE_MARKER"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, worker.encode())
            os.close(fd)
            os._exit(1)
    return _train_run(spec, splits, key, worker)


sweep.train_run = _dies_once  # what the worker's task calls (sweep._dask_task)
