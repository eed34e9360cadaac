from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, Table, Text

from shared.db import Database, ensure_database, service_database, sqlalchemy_url
from shared.messaging import metadata as messaging_metadata
from shared.outbox import Outbox

widgets_metadata = MetaData()
widgets = Table("widgets", widgets_metadata, Column("id", Text, primary_key=True),
                Column("note", Text))


@pytest.fixture
def platform_db(settings):
    """A database with the outbox/inbox tables and a `widgets` table for handler effects."""
    name = service_database("platform", settings.topic_prefix)
    ensure_database(settings.database_url, name)
    db = Database(sqlalchemy_url(settings.database_url, name), pool_size=4)
    messaging_metadata.create_all(db.engine)
    widgets_metadata.create_all(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def outbox():
    return Outbox("platform-test")
