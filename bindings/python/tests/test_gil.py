"""The GIL is released while the runtime works: other Python threads, and other
classifiers, run during a long classify call. If the binding held the GIL, no
Python code of another thread could run inside that call's time window."""
import threading
import time

import busi_infer
from conftest import synthetic_bgr


def test_other_threads_run_while_classifying(backend):
    slow, fast = busi_infer.Classifier(backend), busi_infer.Classifier(backend)
    image = synthetic_bgr(seed=8)
    one = float("inf")
    for _ in range(5):  # the fastest of a few calls: load on the machine only makes calls longer
        start = time.perf_counter()
        slow.classify(image)
        one = min(one, time.perf_counter() - start)
    batch = [image] * max(2, int(0.4 / one) + 1)  # one call of 0.4 s or more

    window = {}

    def long_call():
        window["start"] = time.perf_counter()
        slow.classify_batch(batch)
        window["end"] = time.perf_counter()

    worker = threading.Thread(target=long_call)
    ticks, calls = [], []  # this thread's Python steps, and its own classify calls
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
        t0 = time.perf_counter()
        fast.classify(image)
        calls.append((t0, time.perf_counter()))
    worker.join()

    begin, end = window["start"], window["end"]
    quarter = (end - begin) / 4
    inside = [t for t in ticks if begin + quarter < t < end - quarter]
    assert inside, f"no Python step of the main thread during the middle of a {end - begin:.3f} s classify call"
    overlapped = [c for c in calls if begin < c[0] and c[1] < end]
    assert overlapped, "no classify call of a second classifier completed during the long call"
