"""UN/CEFACT CII D16B `CrossIndustryInvoice` (EN 16931 profile; also Factur-X / ZUGFeRD) →
normalised invoice.

Field mapping: BT-24 `ExchangedDocumentContext/GuidelineSpecifiedDocumentContextParameter/ID`,
BT-1 `ExchangedDocument/ID`, BT-3 `TypeCode`, BT-2 `IssueDateTime/DateTimeString` (format 102,
`YYYYMMDD`); in `SupplyChainTradeTransaction`: the agreement's `SellerTradeParty` (BT-27 name,
BT-29 `ID`/`GlobalID`, BT-30 legal organisation id, BT-31 `SpecifiedTaxRegistration/ID[@schemeID
='VA']`, BT-34 `URIUniversalCommunication/URIID` → PEPPOL id) and BT-13
`BuyerOrderReferencedDocument/IssuerAssignedID`; the settlement's BT-5 `InvoiceCurrencyCode`,
BT-25 `InvoiceReferencedDocument/IssuerAssignedID`, BT-9 payment terms due date, VAT breakdown
(`ApplicableTradeTax`), document allowances/charges and the monetary summation; each
`IncludedSupplyChainTradeLineItem` (BT-126 line id, BT-153 product name, BT-146 net price /
BT-149 basis quantity, BT-129/130 billed quantity, BT-132 order line id, BT-151/152 VAT,
line allowances/charges, BT-131 line total).
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from services.invoices.domain import (
    CREDIT_NOTE,
    CREDIT_NOTE_CODES,
    INVOICE,
    AllowanceCharge,
    Invoice,
    Issue,
    Line,
    TaxSubtotal,
    unit_price,
)
from services.invoices.parsers.common import clean, read_date, read_decimal, scheme_value

RSM = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
RAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
UDT = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100"
NS = {"rsm": RSM, "ram": RAM, "udt": UDT}


def _text(el: etree._Element | None, path: str) -> str | None:
    if el is None:
        return None
    found = el.find(path, NS)
    return None if found is None else found.text


class _Reader:
    def __init__(self, inv: Invoice) -> None:
        self.inv = inv

    def at(self, field: str, path: str) -> str:
        self.inv.source_paths[field] = path
        return field

    def dec(self, field: str, el: etree._Element | None, rel: str, base: str) -> Decimal | None:
        self.at(field, f"{base}/{rel}")
        return read_decimal(self.inv, field, _text(el, rel))

    def date(self, field: str, el: etree._Element | None, rel: str, base: str):
        self.at(field, f"{base}/{rel}")
        return read_date(self.inv, field, _text(el, rel), basic=True)


def parse_cii(root: etree._Element, *, source_format: str = "cii") -> Invoice:
    inv = Invoice(source_format=source_format, strict=True)
    r = _Reader(inv)
    rp = "/rsm:CrossIndustryInvoice"
    inv.specification = clean(_text(
        root, "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"))
    r.at("specification", f"{rp}/rsm:ExchangedDocumentContext/"
                          "ram:GuidelineSpecifiedDocumentContextParameter/ram:ID")
    doc = root.find("rsm:ExchangedDocument", NS)
    dp = f"{rp}/rsm:ExchangedDocument"
    inv.number = clean(_text(doc, "ram:ID"))
    r.at("invoice_number", f"{dp}/ram:ID")
    inv.type_code = clean(_text(doc, "ram:TypeCode"))
    r.at("type", f"{dp}/ram:TypeCode")
    if inv.type_code is not None:
        inv.type = CREDIT_NOTE if inv.type_code in CREDIT_NOTE_CODES else INVOICE
    inv.issue_date = r.date("issue_date", doc, "ram:IssueDateTime/udt:DateTimeString", dp)

    tx = root.find("rsm:SupplyChainTradeTransaction", NS)
    tp = f"{rp}/rsm:SupplyChainTradeTransaction"
    agreement = tx.find("ram:ApplicableHeaderTradeAgreement", NS) if tx is not None else None
    ap = f"{tp}/ram:ApplicableHeaderTradeAgreement"
    settlement = tx.find("ram:ApplicableHeaderTradeSettlement", NS) if tx is not None else None
    sp = f"{tp}/ram:ApplicableHeaderTradeSettlement"

    _seller(r, agreement, ap)
    inv.order_reference = clean(_text(agreement, "ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"))
    r.at("order_reference", f"{ap}/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID")
    inv.currency = clean(_text(settlement, "ram:InvoiceCurrencyCode"))
    r.at("currency", f"{sp}/ram:InvoiceCurrencyCode")
    inv.preceding_invoice = clean(_text(settlement, "ram:InvoiceReferencedDocument/ram:IssuerAssignedID"))
    inv.due_date = r.date("due_date", settlement,
                          "ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString", sp)
    if tx is not None:
        _lines(r, tx, tp)
    _settlement(r, settlement, sp)
    return inv


def _seller(r: _Reader, agreement: etree._Element | None, ap: str) -> None:
    base = f"{ap}/ram:SellerTradeParty"
    r.at("supplier", base)
    r.at("supplier.name", f"{base}/ram:Name")
    party = agreement.find("ram:SellerTradeParty", NS) if agreement is not None else None
    if party is None:
        return
    s = r.inv.supplier
    s.name = clean(_text(party, "ram:Name"))
    ids = [clean(e.text) for e in party.findall("ram:ID", NS)]
    ids += [scheme_value(e.get("schemeID"), e.text) for e in party.findall("ram:GlobalID", NS)]
    legal = party.find("ram:SpecifiedLegalOrganization/ram:ID", NS)
    if legal is not None:
        ids.append(scheme_value(legal.get("schemeID"), legal.text))
    s.identifiers = list(dict.fromkeys(i for i in ids if i))
    for reg in party.findall("ram:SpecifiedTaxRegistration/ram:ID", NS):
        if (reg.get("schemeID") or "").upper() == "VA":
            s.vat_id = clean(reg.text)
    uri = party.find("ram:URIUniversalCommunication/ram:URIID", NS)
    if uri is not None:
        s.peppol_id = scheme_value(uri.get("schemeID"), uri.text)


def _allowances(r: _Reader, parent: etree._Element, field: str, base: str,
                ) -> list[tuple[bool, Decimal | None, etree._Element, str, str]]:
    found = []
    for k, ac in enumerate(parent.findall("ram:SpecifiedTradeAllowanceCharge", NS)):
        acp = f"{base}/ram:SpecifiedTradeAllowanceCharge[{k + 1}]"
        f = f"{field}.{k}"
        charge = (clean(_text(ac, "ram:ChargeIndicator/udt:Indicator")) or "").lower() == "true"
        found.append((charge, r.dec(f"{f}.amount", ac, "ram:ActualAmount", acp), ac, acp, f))
    return found


def _lines(r: _Reader, tx: etree._Element, tp: str) -> None:
    inv = r.inv
    r.at("lines", f"{tp}/ram:IncludedSupplyChainTradeLineItem")
    for i, item in enumerate(tx.findall("ram:IncludedSupplyChainTradeLineItem", NS)):
        base = f"{tp}/ram:IncludedSupplyChainTradeLineItem[{i + 1}]"
        f = f"lines.{i}"
        ln = Line()
        ln.line_no = clean(_text(item, "ram:AssociatedDocumentLineDocument/ram:LineID"))
        r.at(f"{f}.line_no", f"{base}/ram:AssociatedDocumentLineDocument/ram:LineID")
        r.at(f"{f}.description", f"{base}/ram:SpecifiedTradeProduct/ram:Name")
        ln.description = clean(_text(item, "ram:SpecifiedTradeProduct/ram:Name"))
        if ln.description is None and clean(_text(item, "ram:SpecifiedTradeProduct/ram:Description")):
            inv.parse_issues.append(Issue(f"{f}.description", "BR-25",
                                          "the item name (BT-153) is missing",
                                          inv.source_paths[f"{f}.description"]))
            ln.description = clean(_text(item, "ram:SpecifiedTradeProduct/ram:Description"))
        agreement = item.find("ram:SpecifiedLineTradeAgreement", NS)
        lap = f"{base}/ram:SpecifiedLineTradeAgreement"
        ln.po_line_no = clean(_text(agreement, "ram:BuyerOrderReferencedDocument/ram:LineID"))
        price = r.dec(f"{f}.unit_price", agreement, "ram:NetPriceProductTradePrice/ram:ChargeAmount", lap)
        basis = r.dec(f"{f}.base_quantity", agreement,
                      "ram:NetPriceProductTradePrice/ram:BasisQuantity", lap)
        ln.price_amount, ln.base_quantity = price, basis
        if price is not None and basis:
            ln.unit_price = unit_price(price, basis)
        else:
            ln.unit_price = price
        delivery = item.find("ram:SpecifiedLineTradeDelivery", NS)
        ldp = f"{base}/ram:SpecifiedLineTradeDelivery"
        ln.quantity = r.dec(f"{f}.quantity", delivery, "ram:BilledQuantity", ldp)
        qty_el = delivery.find("ram:BilledQuantity", NS) if delivery is not None else None
        ln.uom = clean(qty_el.get("unitCode")) if qty_el is not None else None
        r.at(f"{f}.uom", f"{ldp}/ram:BilledQuantity/@unitCode")
        settlement = item.find("ram:SpecifiedLineTradeSettlement", NS)
        lsp = f"{base}/ram:SpecifiedLineTradeSettlement"
        if settlement is not None:
            ln.tax_category = clean(_text(settlement, "ram:ApplicableTradeTax/ram:CategoryCode"))
            r.at(f"{f}.tax_category", f"{lsp}/ram:ApplicableTradeTax/ram:CategoryCode")
            ln.tax_rate = r.dec(f"{f}.tax_rate", settlement,
                                "ram:ApplicableTradeTax/ram:RateApplicablePercent", lsp)
            for charge, amount, *_ in _allowances(r, settlement, f"{f}.allowances_charges", lsp):
                if amount is None:
                    continue
                if charge:
                    ln.charges += amount
                else:
                    ln.allowances += amount
        ln.net_amount = r.dec(f"{f}.net_amount", settlement,
                              "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount",
                              lsp)
        inv.lines.append(ln)


def _settlement(r: _Reader, settlement: etree._Element | None, sp: str) -> None:
    inv = r.inv
    inv.tax_subtotals = []
    r.at("tax_subtotals", f"{sp}/ram:ApplicableTradeTax")
    ms = f"{sp}/ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    fields = {
        "line_total": "ram:LineTotalAmount",
        "charges": "ram:ChargeTotalAmount",
        "allowances": "ram:AllowanceTotalAmount",
        "net": "ram:TaxBasisTotalAmount",
        "rounding": "ram:RoundingAmount",
        "gross": "ram:GrandTotalAmount",
        "prepaid": "ram:TotalPrepaidAmount",
        "payable": "ram:DuePayableAmount",
    }
    for name, tag in fields.items():
        r.at(f"totals.{name}", f"{ms}/{tag}")
    r.at("totals.tax", f"{ms}/ram:TaxTotalAmount")
    if settlement is None:
        return
    for k, tax in enumerate(settlement.findall("ram:ApplicableTradeTax", NS)):
        tp = f"{sp}/ram:ApplicableTradeTax[{k + 1}]"
        f = f"tax_subtotals.{k}"
        inv.tax_subtotals.append(TaxSubtotal(
            category=clean(_text(tax, "ram:CategoryCode")),
            rate=r.dec(f"{f}.rate", tax, "ram:RateApplicablePercent", tp),
            taxable=r.dec(f"{f}.taxable", tax, "ram:BasisAmount", tp),
            amount=r.dec(f"{f}.amount", tax, "ram:CalculatedAmount", tp),
        ))
    for charge, amount, ac, acp, f in _allowances(r, settlement, "allowances_charges", sp):
        inv.allowances_charges.append(AllowanceCharge(
            charge=charge,
            amount=amount,
            reason=clean(_text(ac, "ram:Reason")) or clean(_text(ac, "ram:ReasonCode")),
            tax_category=clean(_text(ac, "ram:CategoryTradeTax/ram:CategoryCode")),
            tax_rate=r.dec(f"{f}.tax_rate", ac, "ram:CategoryTradeTax/ram:RateApplicablePercent", acp),
        ))
    summation = settlement.find("ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    if summation is None:
        return
    for name, tag in fields.items():
        setattr(inv.totals, name, r.dec(f"totals.{name}", summation, tag, ms))
    # BT-110 is the TaxTotalAmount in the invoice currency; a second one may carry BT-111.
    for el in summation.findall("ram:TaxTotalAmount", NS):
        currency = el.get("currencyID")
        if currency is None or currency == inv.currency:
            inv.totals.tax = read_decimal(inv, "totals.tax", el.text)
            break
