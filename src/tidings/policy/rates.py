"""The default rate card shipped with Tidings, as data.

ILLUSTRATIVE ONLY: these USD prices look like a messaging platform's per-message rates but are
not Meta's and are not kept in step with any real price list. Operators set their own card
(`RateCard.from_config`). Prices are per delivered template message, by the recipient's
country (ISO 3166 alpha-2); countries not listed use "default".
"""

from __future__ import annotations

# country → category → USD per delivered message
DEFAULT_RATES: dict[str, dict[str, str]] = {
    "US": {"marketing": "0.0250", "utility": "0.0040", "authentication": "0.0040"},
    "BR": {"marketing": "0.0625", "utility": "0.0080", "authentication": "0.0315"},
    "MX": {"marketing": "0.0305", "utility": "0.0085", "authentication": "0.0085"},
    "CO": {"marketing": "0.0125", "utility": "0.0008", "authentication": "0.0008"},
    "GB": {"marketing": "0.0529", "utility": "0.0220", "authentication": "0.0358"},
    "DE": {"marketing": "0.1365", "utility": "0.0550", "authentication": "0.0768"},
    "FR": {"marketing": "0.0859", "utility": "0.0300", "authentication": "0.0688"},
    "ES": {"marketing": "0.0615", "utility": "0.0200", "authentication": "0.0380"},
    "IT": {"marketing": "0.0691", "utility": "0.0300", "authentication": "0.0380"},
    "IN": {
        "marketing": "0.0107",
        "utility": "0.0014",
        "authentication": "0.0014",
        "authentication_international": "0.0280",
    },
    "ID": {
        "marketing": "0.0411",
        "utility": "0.0250",
        "authentication": "0.0250",
        "authentication_international": "0.1360",
    },
    "NG": {
        "marketing": "0.0516",
        "utility": "0.0067",
        "authentication": "0.0067",
        "authentication_international": "0.0750",
    },
    "ZA": {
        "marketing": "0.0379",
        "utility": "0.0076",
        "authentication": "0.0076",
        "authentication_international": "0.0200",
    },
    "AE": {
        "marketing": "0.0384",
        "utility": "0.0157",
        "authentication": "0.0178",
        "authentication_international": "0.0323",
    },
    "SA": {
        "marketing": "0.0455",
        "utility": "0.0107",
        "authentication": "0.0107",
        "authentication_international": "0.0300",
    },
    "default": {
        "marketing": "0.0604",
        "utility": "0.0077",
        "authentication": "0.0077",
        "authentication_international": "0.0300",
    },
}
