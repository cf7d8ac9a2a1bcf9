"""Protection of everything stateful, applied once over the whole stack instead of by hand per construct.

A CDKTF Aspect (cdktf `Aspects`, visited at synthesis) sets `prevent_destroy` on every resource whose
type holds data or an identity nobody can recreate: the same list the plan review flags
(obiam/review/stateful.py), so "what the review warns about" and "what Terraform refuses to destroy"
cannot drift apart. A construct that adds a stateful resource is protected without doing anything.
"""

from __future__ import annotations

from typing import Any

import jsii
from cdktf import IAspect, TerraformResource, TerraformResourceLifecycle
from constructs import IConstruct

from obiam.review.stateful import is_stateful

# Stateful types the toolkit replaces on purpose: a generated password is copied into its secret
# (which is protected) and can be regenerated; the runtime parameter only points at other resources.
# A password that must never change (the keystore's) keeps its own lifecycle in its construct.
REPLACEABLE = frozenset({"random_password", "aws_ssm_parameter"})


def protected_type(resource_type: str) -> bool:
    return is_stateful(resource_type) and resource_type not in REPLACEABLE


@jsii.implements(IAspect)
class StatefulProtection:
    """Sets `lifecycle.prevent_destroy` (keeping the rest of the lifecycle) on every protected type."""

    def __init__(self, prevent_destroy: bool) -> None:
        self.prevent_destroy = prevent_destroy

    def visit(self, node: IConstruct) -> None:
        if not isinstance(node, TerraformResource) or not protected_type(node.terraform_resource_type):
            return
        current = node.lifecycle
        kept: dict[str, Any] = {} if current is None else {
            "create_before_destroy": current.create_before_destroy, "ignore_changes": current.ignore_changes,
            "replace_triggered_by": current.replace_triggered_by, "precondition": current.precondition,
            "postcondition": current.postcondition}
        node.lifecycle = TerraformResourceLifecycle(**kept, prevent_destroy=self.prevent_destroy)
