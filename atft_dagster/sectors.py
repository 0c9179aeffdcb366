"""TSE industry classification (33 sectors, their TOPIX-17 parents) and market segments.

Facts from the JPX / J-Quants code tables; ``9999`` ("Other") is used for funds and unclassified codes.
"""

from __future__ import annotations

SECTOR17: dict[str, str] = {
    "1": "Foods",
    "2": "Energy Resources",
    "3": "Construction & Materials",
    "4": "Raw Materials & Chemicals",
    "5": "Pharmaceutical",
    "6": "Automobiles & Transportation Equipment",
    "7": "Steel & Nonferrous Metals",
    "8": "Machinery",
    "9": "Electric Appliances & Precision Instruments",
    "10": "IT & Services, Others",
    "11": "Electric Power & Gas",
    "12": "Transportation & Logistics",
    "13": "Commercial & Wholesale Trade",
    "14": "Retail Trade",
    "15": "Banks",
    "16": "Financials (ex Banks)",
    "17": "Real Estate",
    "99": "Other",
}

# sector33 code -> (English name, sector17 parent code)
SECTOR33: dict[str, tuple[str, str]] = {
    "0050": ("Fishery, Agriculture & Forestry", "1"),
    "1050": ("Mining", "2"),
    "2050": ("Construction", "3"),
    "3050": ("Foods", "1"),
    "3100": ("Textiles & Apparels", "4"),
    "3150": ("Pulp & Paper", "4"),
    "3200": ("Chemicals", "4"),
    "3250": ("Pharmaceutical", "5"),
    "3300": ("Oil & Coal Products", "2"),
    "3350": ("Rubber Products", "6"),
    "3400": ("Glass & Ceramics Products", "3"),
    "3450": ("Iron & Steel", "7"),
    "3500": ("Nonferrous Metals", "7"),
    "3550": ("Metal Products", "3"),
    "3600": ("Machinery", "8"),
    "3650": ("Electric Appliances", "9"),
    "3700": ("Transportation Equipment", "6"),
    "3750": ("Precision Instruments", "9"),
    "3800": ("Other Products", "10"),
    "4050": ("Electric Power & Gas", "11"),
    "5050": ("Land Transportation", "12"),
    "5100": ("Marine Transportation", "12"),
    "5150": ("Air Transportation", "12"),
    "5200": ("Warehousing & Harbor Transportation Services", "12"),
    "5250": ("Information & Communication", "10"),
    "6050": ("Wholesale Trade", "13"),
    "6100": ("Retail Trade", "14"),
    "7050": ("Banks", "15"),
    "7100": ("Securities & Commodity Futures", "16"),
    "7150": ("Insurance", "16"),
    "7200": ("Other Financing Business", "16"),
    "8050": ("Real Estate", "17"),
    "9050": ("Services", "10"),
    "9999": ("Other", "99"),
}

# The 33 operating-company sectors (without 9999).
SECTOR33_CODES: tuple[str, ...] = tuple(c for c in SECTOR33 if c != "9999")
VALID_SECTOR33_CODES: frozenset[str] = frozenset(SECTOR33)
VALID_SECTOR17_CODES: frozenset[str] = frozenset(SECTOR17)

# J-Quants market codes -> canonical segment names.
MARKET_SEGMENTS: dict[str, str] = {"0111": "Prime", "0112": "Standard", "0113": "Growth"}
LEGACY_MARKETS: dict[str, str] = {
    "0101": "Prime",  # 1st Section (before 2022-04-04)
    "0102": "Standard",  # 2nd Section
    "0104": "Growth",  # Mothers
    "0106": "Standard",  # JASDAQ Standard
    "0107": "Growth",  # JASDAQ Growth
}
SEGMENTS: tuple[str, ...] = ("Prime", "Standard", "Growth", "Other")


def sector17_of(sector33: str) -> str:
    return SECTOR33[sector33][1]


def segment_of_market_code(market_code: str) -> str:
    return MARKET_SEGMENTS.get(market_code) or LEGACY_MARKETS.get(market_code) or "Other"
