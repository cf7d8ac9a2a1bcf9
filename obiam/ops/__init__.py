"""Operations around `cdktf deploy`: bootstrap-state, preflight, verify, reap (boto3)."""
