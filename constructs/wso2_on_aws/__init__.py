"""Constructs for WSO2 Open Banking IAM on AWS, one per concern.

Each takes a small typed props object, defaults to the secure choice, and
exposes what the next construct needs. None of them reads files or environment
variables: the stack passes everything in.
"""

from wso2_on_aws import provider_package

# Before any construct module imports a provider resource module.
provider_package.install()
