"""pytest configuration for the fastlr test suite. Imports no torch: the modules that need torch skip
themselves when it is missing (``pytest.importorskip("torch")`` before they import ``_torch_helpers``
or ``_helpers_more``), so ``pytest`` runs the rest on a machine without it.

Hypothesis: the ``ci`` profile (selected by ``CI=1`` or ``HYPOTHESIS_PROFILE=ci``) is derandomized,
so a failure in CI reproduces exactly on any machine; ``HYPOTHESIS_PROFILE=dev`` (the default
otherwise) draws new examples each run and prints the seed of a failure.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev"))
