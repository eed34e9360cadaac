"""Helpers shared by the test suites: polling, tokens, Kafka probes, in-process services."""
