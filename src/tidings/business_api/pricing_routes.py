"""`GET /{waba_id}?fields=pricing_analytics.start(…).end(…).granularity(DAILY)`: what a
business's delivered messages cost, per day, in Graph's field-expansion syntax
(reference/cloud-api.md §9). The WABA node answers through the shared `GET /{node_id}` route.

Supported: `start` and `end` (unix seconds; whole UTC days covering them), `granularity`
DAILY, `metric_types` (COST, VOLUME), the filters `pricing_types`, `pricing_categories`,
`country_codes` and `phone_numbers` (display numbers), and `dimensions` PRICING_CATEGORY,
PRICING_TYPE, COUNTRY and PHONE (a data point per value). Anything else (TIER, HALF_HOUR,
MONTHLY...) is refused with 100 rather than answered wrongly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from tidings.billing.service import Billing, CostLine
from tidings.business.service import MANAGEMENT
from tidings.business_api.auth import business_caller, businesses_of
from tidings.business_api.graph_errors import GraphError

FIELD = "pricing_analytics"
_CALL = re.compile(r"\.([a-z_]+)\(([^()]*)\)")
METRICS = frozenset({"COST", "VOLUME"})
DIMENSIONS = ("PRICING_CATEGORY", "PRICING_TYPE", "COUNTRY", "PHONE")
_DIMENSION_KEYS = {
    "PRICING_CATEGORY": "pricing_category",
    "PRICING_TYPE": "pricing_type",
    "COUNTRY": "country",
    "PHONE": "phone_number",
}
UNKNOWN_COUNTRY = "ZZ"  # a recipient whose calling code names no country
PRICING_TYPES = frozenset({"REGULAR", "FREE_CUSTOMER_SERVICE", "FREE_ENTRY_POINT"})
# The `pricing_categories` filter's values (the OpenAPI document lists them in this order).
PRICING_CATEGORIES = (
    "AUTHENTICATION",
    "AUTHENTICATION_INTERNATIONAL",
    "MARKETING",
    "MARKETING_LITE",
    "SERVICE",
    "UTILITY",
    "REFERRAL_CONVERSION",
)


@dataclass
class AnalyticsQuery:
    start: datetime
    end: datetime
    metrics: frozenset[str] = METRICS
    dimensions: tuple[str, ...] = ()
    pricing_types: frozenset[str] | None = None
    pricing_categories: frozenset[str] | None = None
    country_codes: frozenset[str] | None = None
    phone_numbers: frozenset[str] | None = None
    raw: dict[str, str] = field(default_factory=dict)

    @property
    def detail(self) -> bool:
        """Whether the answer needs costs per country and number."""
        wanted = {"COUNTRY", "PHONE"} & set(self.dimensions)
        return bool(wanted) or self.country_codes is not None or self.phone_numbers is not None


def _values(text: str, name: str, allowed: frozenset[str] | tuple[str, ...]) -> list[str]:
    """A Graph list argument, `[A,B]` or `["A","B"]`, checked against `allowed`."""
    inner = text.strip()
    if not (inner.startswith("[") and inner.endswith("]")):
        raise GraphError(100, f'{name} must be a list, e.g. {name}(["{sorted(allowed)[0]}"])')
    values = [v.strip().strip("\"'").upper() for v in inner[1:-1].split(",") if v.strip()]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise GraphError(
            100, f"{name} accepts {', '.join(sorted(allowed))}; got {', '.join(unknown) or 'none'}"
        )
    return values


def _free_list(text: str, name: str, pattern: str, example: str) -> frozenset[str]:
    """A list argument of free values (country codes, phone numbers), each matching `pattern`."""
    inner = text.strip()
    values = [v.strip().strip("\"'").upper() for v in inner[1:-1].split(",") if v.strip()]
    if not (inner.startswith("[") and inner.endswith("]")) or not values:
        raise GraphError(100, f"{name} must be a non-empty list, e.g. {name}([{example}])")
    bad = [v for v in values if not re.fullmatch(pattern, v)]
    if bad:
        raise GraphError(100, f"{name} has values that are not valid: {', '.join(bad)}")
    return frozenset(values)


def _unix(text: str, name: str) -> datetime:
    if not text.strip().isdigit():
        raise GraphError(100, f"{name} must be a unix timestamp in seconds")
    try:
        return datetime.fromtimestamp(int(text), UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise GraphError(100, f"{name} is out of range") from exc


def parse_pricing_analytics(spec: str) -> AnalyticsQuery:
    """`pricing_analytics.start(1).end(2).granularity(DAILY)...` → the query it asks."""
    rest = spec[len(FIELD) :]
    calls = _CALL.findall(rest)
    if "".join(f".{name}({args})" for name, args in calls) != rest:
        raise GraphError(100, f"Syntax error in the field expansion {spec!r}")
    raw: dict[str, str] = {}
    for name, args in calls:
        if name in raw:
            raise GraphError(100, f"{FIELD}.{name} is given twice")
        raw[name] = args
    unknown = set(raw) - {
        "start", "end", "granularity", "metric_types", "dimensions", "pricing_types",
        "pricing_categories", "country_codes", "phone_numbers",
    }  # fmt: skip
    if unknown:
        raise GraphError(
            100, f"{FIELD} does not support {', '.join(sorted(unknown))} on this server"
        )
    for required in ("start", "end", "granularity"):
        if required not in raw:
            raise GraphError(100, f"{FIELD} requires {required}(…)")
    if raw["granularity"].strip().upper() != "DAILY":
        raise GraphError(100, f"{FIELD} granularity must be DAILY on this server")
    query = AnalyticsQuery(_unix(raw["start"], "start"), _unix(raw["end"], "end"), raw=raw)
    if query.end <= query.start:
        raise GraphError(100, f"{FIELD}: end must come after start")
    if "metric_types" in raw:
        query.metrics = frozenset(_values(raw["metric_types"], "metric_types", METRICS))
    if "dimensions" in raw:
        query.dimensions = tuple(_values(raw["dimensions"], "dimensions", DIMENSIONS))
    if "pricing_types" in raw:
        query.pricing_types = frozenset(
            _values(raw["pricing_types"], "pricing_types", PRICING_TYPES)
        )
    if "pricing_categories" in raw:
        query.pricing_categories = frozenset(
            _values(raw["pricing_categories"], "pricing_categories", PRICING_CATEGORIES)
        )
    if "country_codes" in raw:
        query.country_codes = _free_list(raw["country_codes"], "country_codes", r"[A-Z]{2}", "US")
    if "phone_numbers" in raw:
        query.phone_numbers = frozenset(
            n.lstrip("+")
            for n in _free_list(
                raw["phone_numbers"], "phone_numbers", r"\+?\d{6,20}", "15550783881"
            )
        )
    return query


def data_points(
    query: AnalyticsQuery, lines: list[CostLine], phones: dict[int, str]
) -> list[dict[str, Any]]:
    """One point per day and requested dimension values, in day order. `phones` maps the
    business's phone row ids to display numbers."""
    points: dict[tuple[Any, ...], dict[str, Any]] = {}
    for line in lines:
        dims = {
            "PRICING_CATEGORY": line.pricing_category.upper(),
            "PRICING_TYPE": line.pricing_type.upper(),
            "COUNTRY": line.country or UNKNOWN_COUNTRY,
            "PHONE": phones.get(line.phone_id or 0, ""),
        }
        wanted = (
            (query.pricing_categories, "PRICING_CATEGORY"),
            (query.pricing_types, "PRICING_TYPE"),
            (query.country_codes, "COUNTRY"),
            (query.phone_numbers, "PHONE"),
        )
        if any(only is not None and dims[name] not in only for only, name in wanted):
            continue
        key = (line.day, *(dims[d] for d in query.dimensions))
        point = points.setdefault(
            key,
            {
                "start": int(line.start.timestamp()),
                "end": int(line.end.timestamp()),
                **{_DIMENSION_KEYS[d]: dims[d] for d in query.dimensions},
                "volume": 0,
                "cost": 0,
            },
        )
        point["volume"] += line.volume
        point["cost"] += line.cost
    result = []
    for point in points.values():
        point["cost"] = float(point["cost"])
        for metric, name in (("VOLUME", "volume"), ("COST", "cost")):
            if metric not in query.metrics:
                del point[name]
        result.append(point)
    return result


def split_fields(text: str) -> list[str]:
    """`fields=a,b.c([X,Y])`: split on the commas outside parentheses and brackets."""
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char in "([":
            depth += 1
        elif char in ")]":
            depth -= 1
        if char == "," and depth == 0:
            fields.append("".join(current))
            current = []
        else:
            current.append(char)
    fields.append("".join(current))
    return [f.strip() for f in fields if f.strip()]


async def waba_node(request: Request, node_id: str) -> dict[str, Any] | None:
    """The caller's WABA node, or None if `node_id` is not the caller's WABA."""
    caller = await business_caller(request)
    if node_id != caller.waba_id:
        return None
    caller.require(MANAGEMENT)
    requested = split_fields(request.query_params.get("fields", ""))
    node: dict[str, Any] = {"id": caller.waba_id}
    for spec in requested:
        if spec == "id":
            continue
        if spec != FIELD and not spec.startswith(FIELD + "."):
            raise GraphError(
                100,
                f"Tried accessing nonexisting field ({spec.split('.')[0]}) on node type"
                " (WhatsAppBusinessAccount)",
            )
        query = parse_pricing_analytics(spec)
        billing: Billing = request.app.state.billing
        lines = await billing.daily_costs(
            caller.business_id, query.start, query.end, detail=query.detail
        )
        phones = {
            phone.phone_pk: phone.display_phone_number
            for phone in await businesses_of(request).all_phones()
            if phone.business_id == caller.business_id
        }
        node[FIELD] = {"data": [{"data_points": data_points(query, lines, phones)}]}
    return node
