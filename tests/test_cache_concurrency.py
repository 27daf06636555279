"""The run cache under concurrency (issue 27): two processes asking for the same key at once
train it once; a holder killed mid-run blocks nobody. Trainings are counted by a line each
appends to a file."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from scratchnet.nn import build_model
from scratchnet.study.cache import RunCache

# One process asking the cache for `key`: trains (appends to `count`, says so in `ready`,
# sleeps `seconds`) unless the entry is there; prints (record, facts, cached) as JSON.
ASK = """
import json, os, sys, time
from pathlib import Path
from scratchnet.nn import build_model
from scratchnet.study.cache import RunCache

root, key, count, ready, seconds = sys.argv[1:]

def train():
    with open(count, "a") as f:
        f.write(f"{os.getpid()}\\n")
    Path(ready).touch()
    time.sleep(float(seconds))
    record = {"key": key, "seed": 0, "test_acc": 0.5, "final_val_acc": 0.5, "diverged": False,
              "diverged_epoch": None, "history": [], "robustness": None}
    network = build_model({"kind": "softmax"}, input_dim=4, num_classes=3, seed=0)
    return record, {"started": 1.0, "ended": 2.0, "worker": f"here:{os.getpid()}"}, network

print(json.dumps(RunCache(root).train_once(key, train)[:3]))
"""


def ask(root: Path, key: str, seconds: float) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            ASK,
            str(root),
            key,
            str(root / "count"),
            str(root / f"ready-{time.monotonic_ns()}"),
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def wait_for_training(root: Path, deadline: float = 30.0) -> None:
    end = time.monotonic() + deadline
    while not list(root.glob("ready-*")):
        assert time.monotonic() < end, "no process started training"
        time.sleep(0.05)


def trainings(root: Path) -> list[str]:
    count = root / "count"
    return count.read_text().split() if count.exists() else []


def test_two_processes_asking_for_one_key_at_once_train_it_once(tmp_path):
    first = ask(tmp_path, "k1", seconds=1.5)
    wait_for_training(tmp_path)  # the first holds the key's lock now
    second = ask(tmp_path, "k1", seconds=1.5)
    out_first, out_second = (json.loads(p.communicate(timeout=60)[0]) for p in (first, second))
    assert len(trainings(tmp_path)) == 1
    assert out_first[2] is False and out_second[2] is True  # the second reused the first's entry
    assert out_first[:2] == out_second[:2]
    assert RunCache(tmp_path).record("k1", None) == tuple(out_first[:2])


def test_different_keys_train_side_by_side(tmp_path):
    started = time.monotonic()
    procs = [ask(tmp_path, key, seconds=2.0) for key in ("k1", "k2")]
    for p in procs:
        p.communicate(timeout=60)
    assert len(trainings(tmp_path)) == 2
    # two 2 s trainings that waited for each other would take 4 s (plus start-up of each)
    assert time.monotonic() - started < 2.0 + 3.0


def test_a_holder_killed_mid_run_does_not_block_the_next(tmp_path):
    holder = ask(tmp_path, "k1", seconds=600)
    wait_for_training(tmp_path)
    holder.send_signal(signal.SIGKILL)  # dies holding the lock: the kernel releases it
    assert holder.wait(timeout=10) == -signal.SIGKILL
    assert RunCache(tmp_path).get("k1") is None  # it wrote nothing
    started = time.monotonic()
    nxt = ask(tmp_path, "k1", seconds=0)
    record, facts, cached = json.loads(nxt.communicate(timeout=60)[0])
    assert cached is False and record["key"] == "k1" and len(trainings(tmp_path)) == 2
    assert time.monotonic() - started < 30


def test_where_the_cache_folder_does_not_exist_the_run_trains_without_a_lock(tmp_path):
    cache = RunCache(tmp_path / "absent")
    record = {
        "key": "k1",
        "seed": 0,
        "test_acc": None,
        "final_val_acc": None,
        "diverged": True,
        "diverged_epoch": 1,
        "history": [],
    }
    facts = {"started": 1.0, "ended": 2.0, "worker": "elsewhere:1"}
    network = build_model({"kind": "softmax"}, input_dim=4, num_classes=3, seed=0)
    # the caller stores the entry and its network
    assert cache.train_once("k1", lambda: (record, facts, network)) == (
        {**record, "robustness": None},
        facts,
        False,
        None,
        network,
    )
    assert not (tmp_path / "absent").exists()  # a remote worker creates nothing; the driver stores
