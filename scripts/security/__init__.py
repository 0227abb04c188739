"""`make security`: our own checks where the off-the-shelf tools have none (compose policy)."""
