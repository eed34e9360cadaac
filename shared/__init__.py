"""The project's shared library: settings, database, events, outbox/inbox, auth, errors, metrics."""
