"""CDKTF stacks: one `ObIamStack` per environment, composed from constructs in `wso2_on_aws`."""

# The stack module imports provider resource modules itself, ahead of wso2_on_aws.
from wso2_on_aws import provider_package

provider_package.install()
