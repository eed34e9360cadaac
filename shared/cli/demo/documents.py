"""Supplier invoices in every format the invoices service takes: native JSON, PEPPOL BIS 3.0
UBL (structure of the PEPPOL base example), UN/CEFACT CII (drafthorse), Factur-X (CII embedded
in a PDF with the `factur-x` package) and CSV batches. One format-independent `InvoiceDoc`
feeds every builder, so the same invoice can be sent in any of them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from lxml import etree

from shared.cli.demo.world import SupplierProfile

CENT = Decimal("0.01")
UBL_NS = {
    "invoice": "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
    "creditnote": "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
PEPPOL_CUSTOMIZATION = ("urn:cen.eu:en16931:2017#compliant#"
                        "urn:fdc:peppol.eu:2017:poacc:billing:3.0")
PEPPOL_PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
VAT_RATES = {"DE": "19", "GB": "20", "NL": "21", "SE": "25", "NO": "25", "US": "0"}

# The buyer (us), as it appears on every invoice.
BUYER = {"name": "Demo Buyer Corp", "vat_id": "SE4598375937", "peppol_id": "0007:4598375937",
         "country": "SE", "city": "Stockholm"}

# CSV batch columns (one row per invoice line; invoices grouped by supplier + invoice number).
CSV_COLUMNS = (
    "supplier_id", "supplier_vat_id", "supplier_peppol_id", "supplier_name",
    "type", "invoice_number", "issue_date", "due_date", "currency", "order_reference",
    "preceding_invoice", "line_no", "description", "quantity", "uom", "unit_price",
    "net_amount", "po_line_no", "tax_rate", "total_net", "total_tax", "total_gross",
    "total_payable",
)


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


@dataclass(frozen=True)
class DocLine:
    line_no: str
    description: str
    quantity: Decimal
    unit_price: Decimal
    uom: str = "EA"
    po_line_no: str | None = None

    @property
    def net_amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)


@dataclass(frozen=True)
class InvoiceDoc:
    number: str
    issue_date: date
    currency: str
    supplier: SupplierProfile
    lines: tuple[DocLine, ...]
    order_reference: str | None = None
    due_date: date | None = None
    type: str = "invoice"  # or credit_note
    preceding_invoice: str | None = None
    tax_rate: Decimal = field(default=Decimal("25"))

    @property
    def net(self) -> Decimal:
        return sum((line.net_amount for line in self.lines), Decimal(0))

    @property
    def tax(self) -> Decimal:
        return money(self.net * self.tax_rate / 100)

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax

    @property
    def tax_category(self) -> str:
        return "S" if self.tax_rate else "Z"

    def renumbered(self, number: str, issue_date: date | None = None) -> InvoiceDoc:
        return replace(self, number=number, issue_date=issue_date or self.issue_date)


def tax_rate_for(supplier: SupplierProfile) -> Decimal:
    return Decimal(VAT_RATES.get(supplier.country, "25"))


# -- native JSON --------------------------------------------------------------------------------
def to_json(doc: InvoiceDoc) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": doc.type,
        "invoice_number": doc.number,
        "issue_date": doc.issue_date.isoformat(),
        "currency": doc.currency,
        "supplier": {"id": doc.supplier.id, "vat_id": doc.supplier.vat_id,
                     "peppol_id": doc.supplier.peppol_id, "name": doc.supplier.name},
        "lines": [
            {"line_no": line.line_no, "description": line.description,
             "quantity": str(line.quantity), "uom": line.uom,
             "unit_price": str(line.unit_price), "net_amount": str(line.net_amount),
             "tax_rate": str(doc.tax_rate),
             **({"po_line_no": line.po_line_no} if line.po_line_no else {})}
            for line in doc.lines
        ],
        "totals": {"net": str(doc.net), "tax": str(doc.tax), "gross": str(doc.gross),
                   "payable": str(doc.gross)},
    }
    if doc.due_date:
        body["due_date"] = doc.due_date.isoformat()
    if doc.order_reference:
        body["order_reference"] = doc.order_reference
    if doc.preceding_invoice:
        body["preceding_invoice"] = doc.preceding_invoice
    return body


# -- UBL 2.1 / PEPPOL BIS Billing 3.0 -----------------------------------------------------------
def _el(parent: etree._Element, tag: str, text: Any = None, **attrs: str) -> etree._Element:
    prefix, _, local = tag.partition(":")
    node = etree.SubElement(parent, f"{{{UBL_NS[prefix]}}}{local}", attrs)
    if text is not None:
        node.text = str(text)
    return node


def _amount(parent: etree._Element, tag: str, value: Decimal, currency: str) -> None:
    _el(parent, tag, money(value), currencyID=currency)


def _scheme(peppol_id: str) -> tuple[str, str]:
    scheme, _, value = peppol_id.partition(":")
    return scheme, value


def _ubl_party(parent: etree._Element, *, name: str, peppol_id: str, vat_id: str, country: str,
               city: str, party_id: str | None = None) -> None:
    party = _el(parent, "cac:Party")
    scheme, value = _scheme(peppol_id)
    _el(party, "cbc:EndpointID", value, schemeID=scheme)
    if party_id:
        _el(_el(party, "cac:PartyIdentification"), "cbc:ID", party_id)
    _el(_el(party, "cac:PartyName"), "cbc:Name", name)
    address = _el(party, "cac:PostalAddress")
    _el(address, "cbc:CityName", city)
    _el(_el(address, "cac:Country"), "cbc:IdentificationCode", country)
    tax = _el(party, "cac:PartyTaxScheme")
    _el(tax, "cbc:CompanyID", vat_id)
    _el(_el(tax, "cac:TaxScheme"), "cbc:ID", "VAT")
    _el(_el(party, "cac:PartyLegalEntity"), "cbc:RegistrationName", name)


def _tax_category(parent: etree._Element, tag: str, doc: InvoiceDoc) -> None:
    cat = _el(parent, tag)
    _el(cat, "cbc:ID", doc.tax_category)
    _el(cat, "cbc:Percent", doc.tax_rate)
    _el(_el(cat, "cac:TaxScheme"), "cbc:ID", "VAT")


def to_ubl(doc: InvoiceDoc) -> bytes:
    credit = doc.type == "credit_note"
    root_tag = "creditnote:CreditNote" if credit else "invoice:Invoice"
    prefix, _, local = root_tag.partition(":")
    nsmap = {None: UBL_NS[prefix], "cac": UBL_NS["cac"], "cbc": UBL_NS["cbc"]}
    root = etree.Element(f"{{{UBL_NS[prefix]}}}{local}", nsmap=nsmap)
    cur = doc.currency
    _el(root, "cbc:CustomizationID", PEPPOL_CUSTOMIZATION)
    _el(root, "cbc:ProfileID", PEPPOL_PROFILE)
    _el(root, "cbc:ID", doc.number)
    _el(root, "cbc:IssueDate", doc.issue_date.isoformat())
    if doc.due_date and not credit:
        _el(root, "cbc:DueDate", doc.due_date.isoformat())
    _el(root, "cbc:CreditNoteTypeCode" if credit else "cbc:InvoiceTypeCode",
        "381" if credit else "380")
    _el(root, "cbc:DocumentCurrencyCode", cur)
    _el(root, "cbc:BuyerReference", doc.order_reference or "n/a")
    if doc.order_reference:
        _el(_el(root, "cac:OrderReference"), "cbc:ID", doc.order_reference)
    if doc.preceding_invoice:
        ref = _el(_el(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        _el(ref, "cbc:ID", doc.preceding_invoice)
    s = doc.supplier
    _ubl_party(_el(root, "cac:AccountingSupplierParty"), name=s.name, peppol_id=s.peppol_id,
               vat_id=s.vat_id, country=s.country, city=s.city)
    _ubl_party(_el(root, "cac:AccountingCustomerParty"), name=BUYER["name"],
               peppol_id=BUYER["peppol_id"], vat_id=BUYER["vat_id"], country=BUYER["country"],
               city=BUYER["city"])
    if not credit:
        means = _el(root, "cac:PaymentMeans")
        _el(means, "cbc:PaymentMeansCode", "30", name="Credit transfer")
        _el(means, "cbc:PaymentID", doc.number)
    total = _el(root, "cac:TaxTotal")
    _amount(total, "cbc:TaxAmount", doc.tax, cur)
    sub = _el(total, "cac:TaxSubtotal")
    _amount(sub, "cbc:TaxableAmount", doc.net, cur)
    _amount(sub, "cbc:TaxAmount", doc.tax, cur)
    _tax_category(sub, "cac:TaxCategory", doc)
    legal = _el(root, "cac:LegalMonetaryTotal")
    _amount(legal, "cbc:LineExtensionAmount", doc.net, cur)
    _amount(legal, "cbc:TaxExclusiveAmount", doc.net, cur)
    _amount(legal, "cbc:TaxInclusiveAmount", doc.gross, cur)
    _amount(legal, "cbc:PayableAmount", doc.gross, cur)
    for line in doc.lines:
        node = _el(root, "cac:CreditNoteLine" if credit else "cac:InvoiceLine")
        _el(node, "cbc:ID", line.line_no)
        _el(node, "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity", line.quantity,
            unitCode=line.uom)
        _amount(node, "cbc:LineExtensionAmount", line.net_amount, cur)
        if line.po_line_no:
            _el(_el(node, "cac:OrderLineReference"), "cbc:LineID", line.po_line_no)
        item = _el(node, "cac:Item")
        _el(item, "cbc:Name", line.description)
        _tax_category(item, "cac:ClassifiedTaxCategory", doc)
        _el(_el(node, "cac:Price"), "cbc:PriceAmount", line.unit_price, currencyID=cur)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def ubl_from_example(example: bytes, *, number: str, issue_date: date, po_number: str,
                     supplier: SupplierProfile, lines: list[DocLine],
                     tax_rate: Decimal = Decimal("25"), keep_charges: bool = False) -> bytes:
    """A real PEPPOL example made to fit one of our POs: its number and dates, the PO number as
    `cac:OrderReference/cbc:ID`, the seeded supplier's identifiers, the PO's lines and prices,
    totals recomputed. Document-level allowances/charges are dropped (they are not on the PO)
    unless `keep_charges`. Everything else (parties' addresses, payment means, terms, item
    details) stays as it was."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, remove_blank_text=True)
    root = etree.fromstring(example, parser)
    ns = {"cac": UBL_NS["cac"], "cbc": UBL_NS["cbc"]}

    def one(path: str, node: etree._Element = root) -> etree._Element:
        found = node.find(path, ns)
        if found is None:
            raise ValueError(f"the example has no {path}")
        return found

    one("cbc:ID").text = number
    one("cbc:IssueDate").text = issue_date.isoformat()
    due = root.find("cbc:DueDate", ns)
    if due is not None:
        due.text = date.fromordinal(issue_date.toordinal() + 30).isoformat()
    for payment_id in root.findall("cac:PaymentMeans/cbc:PaymentID", ns):
        payment_id.text = number
    order = root.find("cac:OrderReference", ns)
    if order is None:
        anchor = one("cbc:BuyerReference")
        order = etree.Element(f"{{{UBL_NS['cac']}}}OrderReference")
        etree.SubElement(order, f"{{{UBL_NS['cbc']}}}ID")
        anchor.addnext(order)
    one("cbc:ID", order).text = po_number
    party = one("cac:AccountingSupplierParty/cac:Party")
    scheme, value = _scheme(supplier.peppol_id)
    endpoint = one("cbc:EndpointID", party)
    endpoint.text, endpoint.attrib["schemeID"] = value, scheme
    one("cac:PartyTaxScheme/cbc:CompanyID", party).text = supplier.vat_id
    charges = Decimal(0)
    for charge in root.findall("cac:AllowanceCharge", ns):
        if keep_charges:
            amount = Decimal(one("cbc:Amount", charge).text or "0")
            charges += amount if one("cbc:ChargeIndicator", charge).text == "true" else -amount
        else:
            root.remove(charge)
    template = one("cac:InvoiceLine")
    for old in root.findall("cac:InvoiceLine", ns):
        root.remove(old)
    net = Decimal(0)
    for line in lines:
        node = etree.fromstring(etree.tostring(template), parser)
        one("cbc:ID", node).text = line.line_no
        qty = one("cbc:InvoicedQuantity", node)
        qty.text, qty.attrib["unitCode"] = str(line.quantity), line.uom
        one("cbc:LineExtensionAmount", node).text = str(line.net_amount)
        ref = node.find("cac:OrderLineReference/cbc:LineID", ns)
        if ref is not None:
            ref.text = line.po_line_no or line.line_no
        one("cac:Item/cbc:Name", node).text = line.description
        one("cac:Item/cbc:Description", node).text = line.description
        one("cac:Price/cbc:PriceAmount", node).text = str(line.unit_price)
        root.append(node)
        net += line.net_amount
    taxable = net + charges
    tax = money(taxable * tax_rate / 100)
    total = one("cac:TaxTotal")
    one("cbc:TaxAmount", total).text = str(tax)
    sub = one("cac:TaxSubtotal", total)
    one("cbc:TaxableAmount", sub).text = str(taxable)
    one("cbc:TaxAmount", sub).text = str(tax)
    legal = one("cac:LegalMonetaryTotal")
    one("cbc:LineExtensionAmount", legal).text = str(net)
    one("cbc:TaxExclusiveAmount", legal).text = str(taxable)
    one("cbc:TaxInclusiveAmount", legal).text = str(taxable + tax)
    one("cbc:PayableAmount", legal).text = str(taxable + tax)
    charge_total = legal.find("cbc:ChargeTotalAmount", ns)
    if charge_total is not None and not keep_charges:
        legal.remove(charge_total)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# -- UN/CEFACT CII D16B (drafthorse) and Factur-X ----------------------------------------------
def to_cii(doc: InvoiceDoc) -> bytes:
    from drafthorse.models.accounting import ApplicableTradeTax
    from drafthorse.models.document import Document
    from drafthorse.models.party import TaxRegistration
    from drafthorse.models.tradelines import LineItem

    d = Document()
    d.context.guideline_parameter.id = "urn:cen.eu:en16931:2017"
    d.header.id = doc.number
    d.header.type_code = "381" if doc.type == "credit_note" else "380"
    d.header.issue_date_time = doc.issue_date
    agreement = d.trade.agreement
    agreement.buyer_reference = doc.order_reference or "n/a"
    seller = agreement.seller
    seller.name = doc.supplier.name
    scheme, value = _scheme(doc.supplier.peppol_id)
    seller.electronic_address.uri_ID = (scheme, value)
    seller.address.city_name = doc.supplier.city
    seller.address.country_id = doc.supplier.country
    seller.tax_registrations.add(TaxRegistration(id=("VA", doc.supplier.vat_id)))
    buyer = agreement.buyer
    buyer.name = BUYER["name"]
    buyer.address.country_id = BUYER["country"]
    if doc.order_reference:
        agreement.buyer_order.issuer_assigned_id = doc.order_reference
    settlement = d.trade.settlement
    settlement.currency_code = doc.currency
    if doc.preceding_invoice:
        settlement.invoice_referenced_document.issuer_assigned_id = doc.preceding_invoice
    for line in doc.lines:
        li = LineItem()
        li.document.line_id = line.line_no
        li.product.name = line.description
        li.agreement.net.amount = line.unit_price
        li.delivery.billed_quantity = (line.quantity, line.uom)
        li.settlement.trade_tax.type_code = "VAT"
        li.settlement.trade_tax.category_code = doc.tax_category
        li.settlement.trade_tax.rate_applicable_percent = doc.tax_rate
        li.settlement.monetary_summation.total_amount = line.net_amount
        if line.po_line_no:
            li.agreement.buyer_order.line_id = line.po_line_no
        d.trade.items.add(li)
    tax = ApplicableTradeTax()
    tax.calculated_amount = doc.tax
    tax.basis_amount = doc.net
    tax.type_code = "VAT"
    tax.category_code = doc.tax_category
    tax.rate_applicable_percent = doc.tax_rate
    settlement.trade_tax.add(tax)
    if doc.due_date:
        from drafthorse.models.payment import PaymentTerms

        terms = PaymentTerms()
        terms.due = doc.due_date
        settlement.terms.add(terms)
    summary = settlement.monetary_summation
    summary.line_total = doc.net
    summary.charge_total = Decimal("0.00")
    summary.allowance_total = Decimal("0.00")
    summary.tax_basis_total = doc.net
    summary.tax_total = (doc.tax, doc.currency)
    summary.grand_total = doc.gross
    summary.due_amount = doc.gross
    return d.serialize(schema="FACTUR-X_EN16931")


def blank_pdf(title: str) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)  # A4 in points
    writer.add_metadata({"/Title": title, "/Producer": "p2p demo"})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def to_facturx(doc: InvoiceDoc) -> bytes:
    from facturx import generate_from_binary

    xml = to_cii(doc)
    return generate_from_binary(blank_pdf(f"Invoice {doc.number}"), xml, flavor="factur-x",
                                level="en16931", check_xsd=True)


# -- CSV batches ----------------------------------------------------------------------------------
def to_csv(docs: list[InvoiceDoc]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for doc in docs:
        for line in doc.lines:
            writer.writerow({
                "supplier_id": doc.supplier.id, "supplier_vat_id": doc.supplier.vat_id,
                "supplier_peppol_id": doc.supplier.peppol_id, "supplier_name": doc.supplier.name,
                "type": doc.type, "invoice_number": doc.number,
                "issue_date": doc.issue_date.isoformat(),
                "due_date": doc.due_date.isoformat() if doc.due_date else "",
                "currency": doc.currency, "order_reference": doc.order_reference or "",
                "preceding_invoice": doc.preceding_invoice or "",
                "line_no": line.line_no, "description": line.description,
                "quantity": str(line.quantity), "uom": line.uom,
                "unit_price": str(line.unit_price), "net_amount": str(line.net_amount),
                "po_line_no": line.po_line_no or "", "tax_rate": str(doc.tax_rate),
                "total_net": str(doc.net), "total_tax": str(doc.tax),
                "total_gross": str(doc.gross), "total_payable": str(doc.gross),
            })
    return out.getvalue()


CONTENT_TYPES = {"json": "application/json", "ubl": "application/xml",
                 "cii": "application/xml", "facturx": "application/pdf"}


def encode(doc: InvoiceDoc, fmt: str) -> tuple[bytes, str]:
    """The request body and Content-Type for one invoice in `fmt` (not csv: see `to_csv`)."""
    import json

    if fmt == "json":
        return json.dumps(to_json(doc)).encode(), CONTENT_TYPES[fmt]
    if fmt == "ubl":
        return to_ubl(doc), CONTENT_TYPES[fmt]
    if fmt == "cii":
        return to_cii(doc), CONTENT_TYPES[fmt]
    if fmt == "facturx":
        return to_facturx(doc), CONTENT_TYPES[fmt]
    raise ValueError(f"unknown format {fmt!r}")
