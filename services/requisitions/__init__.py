"""The requisitions service."""
