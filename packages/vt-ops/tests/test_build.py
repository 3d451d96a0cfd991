import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import vt_ops


def test_build_info_fields():
    info = vt_ops.build_info()
    assert info["version"] == vt_ops.__version__
    assert isinstance(info["compiler"], str) and info["compiler"]
    assert isinstance(info["cuda_compiled"], bool)
    if info["cuda_compiled"]:
        assert info["cuda_version"] and info["cuda_architectures"]
    else:
        assert info["cuda_version"] is None and info["cuda_architectures"] == []
    assert info["num_threads"] == vt_ops.get_num_threads() >= 1


def test_set_num_threads_changes_and_restores():
    default = vt_ops.get_num_threads()
    try:
        vt_ops.set_num_threads(3)
        assert vt_ops.get_num_threads() == 3
        boxes = np.random.rand(500, 4)
        boxes[:, 2:] += boxes[:, :2]
        expected = vt_ops.box_iou(boxes, boxes)
        vt_ops.set_num_threads(1)
        np.testing.assert_array_equal(vt_ops.box_iou(boxes, boxes), expected)
    finally:
        vt_ops.set_num_threads(0)
    assert vt_ops.get_num_threads() == default
    with pytest.raises(TypeError, match="n: expected an int"):
        vt_ops.set_num_threads(2.5)


def test_env_var_sets_default_threads():
    code = "import vt_ops; print(vt_ops.get_num_threads())"
    env = dict(os.environ, VT_OPS_NUM_THREADS="3")
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "3"


def test_kernels_release_the_gil():
    """A Python thread keeps running while a long kernel runs in another."""
    boxes = np.random.rand(3000, 4)
    boxes[:, 2:] += boxes[:, :2]
    ticks = []
    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            ticks.append(1)

    vt_ops.set_num_threads(1)
    try:
        t = threading.Thread(target=ticker)
        t.start()
        for _ in range(3):
            vt_ops.box_iou(boxes, boxes)
        stop.set()
        t.join()
    finally:
        vt_ops.set_num_threads(0)
    assert len(ticks) > 100


def test_thread_pool_survives_fork():
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    boxes = np.random.rand(2000, 4)
    boxes[:, 2:] += boxes[:, :2]
    expected = vt_ops.box_iou(boxes, boxes).sum()  # starts the pool in the parent
    code = (
        "import os, numpy as np, vt_ops\n"
        "b = np.random.default_rng(0).random((2000, 4)); b[:, 2:] += b[:, :2]\n"
        "vt_ops.box_iou(b, b)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    vt_ops.box_iou(b, b); os._exit(0)\n"
        "_, status = os.waitpid(pid, 0); print(os.WEXITSTATUS(status))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "0"
    assert np.isfinite(expected)
