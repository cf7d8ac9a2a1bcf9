"""Plan review: `terraform show -json` summaries, offline synth diffs, the architecture diagram."""
