"""CDKTF stacks: one `ObIamStack` per environment, composed from constructs in `ob_iam`."""
