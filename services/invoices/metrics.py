"""Business metrics of invoice intake (no ids as labels)."""

from prometheus_client import Counter

INVOICES_RECEIVED = Counter(
    "p2p_invoices_received_total", "Invoices accepted on intake, by source format", ["format"])
INVOICES_REJECTED = Counter(
    "p2p_invoices_rejected_on_intake_total",
    "Documents refused on intake, by reason (malformed, unsafe_xml, unsupported_media_type, "
    "not_an_invoice, validation, duplicate)",
    ["reason"])
INVOICE_DUPLICATES = Counter(
    "p2p_invoice_duplicates_total",
    "Duplicates detected: exact (refused with 409) or suspected (accepted and flagged)",
    ["kind"])
