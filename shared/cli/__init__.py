"""The `p2p` command line."""
