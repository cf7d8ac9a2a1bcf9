"""CDKTF stacks: one `ObIamStack` per environment, composed from constructs in `ob_iam`."""

# The stack module imports provider resource modules itself, ahead of ob_iam.
from ob_iam import provider_package

provider_package.install()
