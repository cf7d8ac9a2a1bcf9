"""Day two on AWS (#15): what would apply cleanly today and break in the first weeks of production.

Each test is one AWS or provider rule, named after it, with its source. They read the session's
synthesized JSON or validate configs; no test here synthesizes on its own (about 1 s in all).
"""

from __future__ import annotations

import pytest

from conftest import Synth

pytestmark = pytest.mark.synth


# --- account safety ------------------------------------------------------------------------------

def test_the_provider_refuses_every_account_but_the_environments_own(synth: Synth) -> None:
    """terraform-provider-aws `allowed_account_ids` (website/docs/index.html.markdown): the provider
    compares the account of the credentials it ends up with (after any assume_role) with the list
    and stops before any call. Each example environment names its own account, and no two accounts
    share a state bucket (S3 bucket names are global; a second account's bootstrap would fail)."""
    buckets: dict[str, str] = {}
    for name, environment in synth.environments.items():
        (provider,) = synth.stack(name)["provider"]["aws"]
        assert provider["allowed_account_ids"] == [environment.config.account.id]
        assert "forbidden_account_ids" not in provider
        bucket = environment.config.state.bucket
        assert buckets.setdefault(bucket, environment.config.account.id) == environment.config.account.id, (
            f"{name} keeps its state in {bucket}, another account's bucket")
