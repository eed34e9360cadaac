"""The invoices service."""
