"""Contract suites live in plain modules (not test files) that venue test modules import,
so pytest would not rewrite their asserts by itself; registering them keeps pytest's
detailed assertion messages in the shared test methods."""

import pytest

pytest.register_assert_rewrite("tests.contract.venue_contract")
