"""The four P2P services, one package each."""
