"""Revisions, oldest first: each file's `revision` and `down_revision` chain them."""
