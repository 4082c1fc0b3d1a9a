"""``gemcaption train --distribute`` with two worker processes on 127.0.0.1 (MultiWorkerMirroredStrategy
from TF_CONFIG): the same weights as one process with the same global batch, and a run that resumes
from its backup after a worker was killed."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from fakes import write_catalogue

pytestmark = pytest.mark.slow  # each run starts TensorFlow in two processes

SETTINGS = ["--image-size", "64", "--embed-dim", "16", "--ff-dim", "16", "--dropout", "0", "--batch-size", "8"]
SETTINGS += ["--no-space", "--patience", "50"]


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    return write_catalogue(tmp_path_factory.mktemp("catalogue"), per_kind=4, size=64)


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _train(catalogue, out, epochs, extra=(), env=None):
    command = [sys.executable, "-m", "gemcaption", "-q", "train", "--data", f"csv:{catalogue}", "--out", str(out)]
    command += ["--epochs", str(epochs), *SETTINGS, *extra]
    return subprocess.Popen(command, env={**os.environ, **(env or {})}, stderr=subprocess.PIPE, text=True)


def _workers(catalogue, out, epochs, backup):
    hosts = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    extra = ["--distribute", "--backup-dir", str(backup)]
    return [
        _train(
            catalogue,
            out,
            epochs,
            extra,
            {"TF_CONFIG": json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})},
        )
        for index in range(2)
    ]


def _finish(process, timeout=300):
    _, errors = process.communicate(timeout=timeout)
    assert process.returncode == 0, errors[-3000:]


def _decoder_weights(model):
    from gemcaption.captioning.captioner import Captioner

    return Captioner.load(model).decoder.get_weights()


def test_two_workers_train_the_weights_of_one_process_with_the_same_global_batch(catalogue, tmp_path):
    _finish(_train(catalogue, tmp_path / "single", 3))
    workers = _workers(catalogue, tmp_path / "multi", 3, tmp_path / "backup")
    for worker in workers:
        _finish(worker)
    history = json.loads((tmp_path / "multi" / "history.json").read_text())
    single = json.loads((tmp_path / "single" / "history.json").read_text())
    assert history["workers"] == 2 and history["worker"] == 0 and len(history["loss"]) == 3
    assert history["loss"][-1] < history["loss"][0]
    np.testing.assert_allclose(history["loss"], single["loss"], rtol=1e-4)
    np.testing.assert_allclose(history["val_loss"], single["val_loss"], rtol=1e-4)
    for distributed, alone in zip(_decoder_weights(tmp_path / "multi"), _decoder_weights(tmp_path / "single")):
        np.testing.assert_allclose(distributed, alone, rtol=1e-3, atol=1e-5)
    assert not (tmp_path / "backup").exists()  # removed once the run finished


def test_a_run_whose_worker_was_killed_resumes_from_the_backup(catalogue, tmp_path):
    epochs, backup = 40, tmp_path / "backup"
    workers = _workers(catalogue, tmp_path / "model", epochs, backup)
    deadline = time.monotonic() + 240
    while not (backup / "state.json").is_file():  # the first epoch backed up
        assert time.monotonic() < deadline and all(w.poll() is None for w in workers), "no backup written"
        time.sleep(0.2)
    workers[1].send_signal(signal.SIGKILL)
    try:  # the survivor fails (or waits for its peer): a cluster manager restarts the job
        workers[0].wait(timeout=30)
    except subprocess.TimeoutExpired:
        workers[0].kill()
    for worker in workers:
        worker.communicate()
    assert not (tmp_path / "model" / "history.json").exists()
    saved = json.loads((backup / "state.json").read_text())["epoch"]
    assert 1 <= saved < epochs
    restarted = _workers(catalogue, tmp_path / "model", epochs, backup)
    for worker in restarted:
        _finish(worker)
    history = json.loads((tmp_path / "model" / "history.json").read_text())
    assert history["resumed_at_epoch"] == saved and len(history["loss"]) == epochs
    assert history["loss"][-1] < history["loss"][0] and not backup.exists()
