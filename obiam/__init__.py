"""WSO2 Open Banking IAM on AWS: environment config, naming, and the operations toolkit.

Nothing in this package imports cdktf or the AWS provider bindings; the stacks
(`stacks/`) and constructs (`constructs/wso2_on_aws/`) do.
"""
