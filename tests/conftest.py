"""Hypothesis profiles: ``ci`` (the default, fast) and ``thorough`` (on demand:
``HYPOTHESIS_PROFILE=thorough python -m pytest``); BLAS limited to one thread."""

import os

from hypothesis import HealthCheck, settings

try:  # threadpoolctl comes with scikit-learn (the projects extra)
    from threadpoolctl import threadpool_limits
except ImportError:
    threadpool_limits = None

# The tests multiply small matrices, where a second BLAS thread only adds synchronisation
# (5-20x slower on a busy 2-core machine): one thread keeps the suite fast and steady.
if threadpool_limits is not None:
    import numpy  # noqa: F401  (threadpool_limits limits only the BLAS already loaded: NumPy's)

    threadpool_limits(1, user_api="blas")

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
