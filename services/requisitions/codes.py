"""Code lists the requisitions domain validates against (pure data, no I/O).

- Currencies: ISO 4217 active codes with their minor units (funds/metals without minor units,
  the no-currency and testing codes are left out: nobody orders goods in them).
- Units of measure: UN/ECE Recommendation 20 codes in common procurement use, plus the
  Recommendation 21 package codes with the `X` prefix that PEPPOL BIS 3.0 accepts. The list is
  deliberately the usual subset, not all ~2000 codes; extend it here when a real unit is missing.
"""

from __future__ import annotations

_NON_TWO_DECIMALS = {
    "BHD": 3, "BIF": 0, "CLF": 4, "CLP": 0, "DJF": 0, "GNF": 0, "IQD": 3, "ISK": 0, "JOD": 3,
    "JPY": 0, "KMF": 0, "KRW": 0, "KWD": 3, "LYD": 3, "OMR": 3, "PYG": 0, "RWF": 0, "TND": 3,
    "UGX": 0, "UYI": 0, "UYW": 4, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
}

_TWO_DECIMALS = """
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BMD BND BOB BOV BRL BSD BTN BWP BYN BZD CAD
CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD
LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB
PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP
SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XAD XCD XCG YER ZAR ZMW
ZWG
""".split()  # noqa: SIM905 - a code table reads best as text

# ISO 4217 code -> number of minor-unit digits.
CURRENCY_MINOR_UNITS: dict[str, int] = {**{c: 2 for c in _TWO_DECIMALS}, **_NON_TWO_DECIMALS}

UNITS_OF_MEASURE: frozenset[str] = frozenset(
    """
    C62 EA H87 NAR NPR PR SET DZN GRO
    KGM GRM MGM TNE LBR ONZ
    MTR CMT MMT DMT KMT INH FOT YRD SMI
    MTK CMK MMK KMK FTK INK YDK HAR ACR
    MTQ LTR MLT CLT DLT HLT CMQ MMQ DMQ GLL GLI FTQ INQ
    SEC MIN HUR DAY WEE MON QAN ANN
    WHR KWH MWH GWH WTT KWT MAW JOU KJO
    AD 2P 4L E34 E35
    E48 ACT LS IE P1
    XBX XPK XCT XPA XBG XRO XCS XPX XBO XCR XDR XBE XTU XCA
    """.split()  # noqa: SIM905
)
