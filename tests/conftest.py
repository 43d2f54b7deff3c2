"""Shared pytest configuration of the test suite.

Tests in ``tests/session_*`` need a session environment (e.g. ``tests/session_scgen`` needs
scgen, which the core environment does not have). The core run skips collecting them;
tests/test_session_envs.py runs them inside their environment with ``TK_SESSION_TESTS=1``.
"""

import os

collect_ignore_glob = [] if os.environ.get("TK_SESSION_TESTS") == "1" else ["session_*"]
