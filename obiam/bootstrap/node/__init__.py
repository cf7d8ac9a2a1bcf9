"""Files that run on the node itself (embedded in the user data); standard library only."""
