"""Hypothesis profiles: ``ci`` (the default, fast) and ``thorough`` (on demand:
``HYPOTHESIS_PROFILE=thorough python -m pytest``); minidl and BLAS limited to one thread."""

import os

from hypothesis import HealthCheck, settings

import minidl

# The tests compute on small arrays, where a second thread only adds synchronisation (5-20x
# slower on a busy 2-core machine): one thread (minidl's pool and NumPy's BLAS) keeps the
# suite fast and steady. tests/test_parallel.py runs the threaded paths on purpose.
minidl.set_num_threads(1)

settings.register_profile(
    "ci",
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
