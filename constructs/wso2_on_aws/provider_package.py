"""Imports the AWS provider package without its eager import of every resource module.

`cdktf_cdktf_provider_aws/__init__.py` imports all 2,212 resource modules so that jsii
knows every type; that is about 5 s of every synth and test process. The constructs
import each resource module they use, which registers exactly the types jsii can hand
back to them (an unregistered one would fail loudly, not silently). So the package is
put in sys.modules without running its __init__, and `import
cdktf_cdktf_provider_aws.<module>` loads only what is used.

jsii 1.142's runtime is built for lazily loaded submodules: meeting an unregistered type
it imports that type's module itself (_reference_map._try_import_type_module) and
otherwise raises "Unknown type"; output never differs silently. The JSON is written by
node in any case. Verified once: `diff -r` of an eager and a lazy synth of every
environment is empty.
"""

from __future__ import annotations

import importlib.util
import sys

PACKAGE = "cdktf_cdktf_provider_aws"


def install() -> None:
    """Idempotent; does nothing when the package was already imported the usual way."""
    if PACKAGE in sys.modules:
        return
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError(f"{PACKAGE} is not installed; run `make setup`")
    sys.modules[PACKAGE] = importlib.util.module_from_spec(spec)
