"""The three Aliyun products whose offline logs cdnlogs archives: CDN, DCDN and VOD (pure data).

Each product has its own API version, endpoint, log-listing action and monitoring actions, and
its own SDK package (whose client class carries the product's endpoint rules). The answers
share one shape, except where a ``Product`` says otherwise (see the API reference, section 7,
and provider-counts-and-operations.md sections 1-2):

* CDN 2018-05-10: ``DescribeCdnDomainLogs``; ``DescribeDomainTrafficData``
  (``TrafficDataPerInterval.DataModule[].Value``, bytes as strings) and ``DescribeDomainQpsData``
  (``QpsDataInterval.DataModule[].AccValue``, requests in the interval);
* DCDN 2018-01-15: ``DescribeDcdnDomainLog`` (``DomainName`` at the top level);
  ``DescribeDcdnDomainTrafficData`` (``TrafficDataPerInterval.DataModule[].Traffic``, a float)
  and ``DescribeDcdnDomainQpsData`` (``QpsDataPerInterval.DataModule[].Acc``);
* VOD 2017-03-21: ``DescribeVodDomainLog`` (``PageInfos.PageNumber``), China (Shanghai)
  endpoint; ``DescribeVodDomainTrafficData`` (``...DataModule[].Value``) and
  ``DescribeVodDomainQpsData`` (``QpsDataInterval.DataModule[].AccValue``).
"""

from __future__ import annotations

from dataclasses import dataclass

from cdnlogs.errors import ConfigError


@dataclass(frozen=True)
class Series:
    """One monitoring action and where its per-interval numbers sit in the answer."""

    action: str
    #: The top-level key holding ``DataModule[]``.
    container: str
    #: The data point's field with the number (bytes or requests per interval).
    field: str


@dataclass(frozen=True)
class Product:
    """What differs between CDN, DCDN and VOD for listing logs and reading monitoring data."""

    name: str
    title: str
    #: The API version of the log listing and the monitoring actions.
    version: str
    default_endpoint: str
    log_action: str
    traffic: Series
    requests: Series
    #: The official SDK package's module (its ``client.Client`` subclasses tea-openapi's).
    sdk_module: str


CDN = Product(
    name="cdn",
    title="CDN",
    version="2018-05-10",
    default_endpoint="https://cdn.aliyuncs.com",
    log_action="DescribeCdnDomainLogs",
    traffic=Series("DescribeDomainTrafficData", "TrafficDataPerInterval", "Value"),
    requests=Series("DescribeDomainQpsData", "QpsDataInterval", "AccValue"),
    sdk_module="alibabacloud_cdn20180510",
)
DCDN = Product(
    name="dcdn",
    title="DCDN",
    version="2018-01-15",
    default_endpoint="https://dcdn.aliyuncs.com",
    log_action="DescribeDcdnDomainLog",
    traffic=Series("DescribeDcdnDomainTrafficData", "TrafficDataPerInterval", "Traffic"),
    requests=Series("DescribeDcdnDomainQpsData", "QpsDataPerInterval", "Acc"),
    sdk_module="alibabacloud_dcdn20180115",
)
VOD = Product(
    name="vod",
    title="VOD",
    version="2017-03-21",
    # The SDK maps every mainland region to the China (Shanghai) endpoint for these calls.
    default_endpoint="https://vod.cn-shanghai.aliyuncs.com",
    log_action="DescribeVodDomainLog",
    traffic=Series("DescribeVodDomainTrafficData", "TrafficDataPerInterval", "Value"),
    requests=Series("DescribeVodDomainQpsData", "QpsDataInterval", "AccValue"),
    sdk_module="alibabacloud_vod20170321",
)

PRODUCTS: dict[str, Product] = {p.name: p for p in (CDN, DCDN, VOD)}
PRODUCT_NAMES = tuple(PRODUCTS)


def product_named(name: str) -> Product:
    """The product called ``name`` (``cdn``, ``dcdn``, ``vod``); ConfigError otherwise."""
    try:
        return PRODUCTS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown product {name!r}", hint="use one of: " + ", ".join(PRODUCT_NAMES)
        ) from None
