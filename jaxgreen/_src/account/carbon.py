"""CO2e of a run: energy × the grid's carbon intensity × the data centre's PUE.

``CO2e (g) = kWh × gCO2e/kWh × PUE``, with kWh = joules / 3.6e6. The energy is what
the price tag reports (measured by NVML, or an estimate: the label carries over); the
intensity is the yearly average of the grid the region draws from, from a published
table kept in :mod:`jaxgreen._src.account._grid_data` with its source and year (Google Cloud
regions: Google's own figures; AWS and Azure regions: the same grid's figure, or their
country's from Ember); PUE (facility energy / IT energy) is the provider's published
fleet average, else the industry average (Uptime Institute, 1.56).

Where the job ran is named (``Experiment(region="us-central1")`` or the
``JAXGREEN_REGION`` environment variable), or read from the cloud VM's metadata
service (Google Cloud, AWS, Azure), in a background thread with short timeouts, only on
a machine whose firmware says it is such a VM. A region that is not named, not found,
or not in the table gives CO2e ``unavailable``: never a guess.

Regions are ``gcp:us-central1``, ``aws:us-east-1``, ``azure:eastus`` or a country's
ISO code (``FR``); a cloud region's bare name is accepted where it is unambiguous.

Example:
  >>> c = lookup("gcp:us-central1")
  >>> c.intensity, c.pue  # Google's 2024 figure for Iowa; Google's fleet PUE
  (412.72, 1.09)
  >>> round(c.co2e_g(3.6e6), 2)  # 1 kWh x 412.72 g/kWh x 1.09
  449.86
  >>> lookup(None).co2e_g(3.6e6) is None
  True
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
import urllib.request
from collections.abc import Mapping
from typing import Any

from jaxgreen._src.account import _grid_data as data

#: Joules per kWh.
J_PER_KWH = 3.6e6
#: The environment variables read when no region or PUE is given.
REGION_ENV, PUE_ENV = "JAXGREEN_REGION", "JAXGREEN_PUE"
#: The metadata service's address (the link-local one all three clouds use); tests
#: point it at a fake server on loopback. ``JAXGREEN_METADATA=off`` disables detection.
METADATA_ENV = "JAXGREEN_METADATA"
METADATA_URL = "http://169.254.169.254"
#: Seconds each metadata request may take (a VM's service answers in milliseconds).
METADATA_TIMEOUT_S = 0.5


def _gcp_table() -> dict[str, tuple[str, float]]:
  out = {}
  for line in data.GCP_2024.splitlines():
    region, location, _cfe, intensity = line.split(",")
    out[region] = (location, float(intensity))
  return out


GCP = _gcp_table()


@dataclasses.dataclass(frozen=True)
class Carbon:
  """Where a run drew its energy: the grid's intensity and the data centre's PUE.

  Attributes:
    region: the region as resolved (``"gcp:us-central1"``), or None when unknown.
    region_source: how it was found (given, the environment, the metadata service),
      or why it is unknown.
    intensity: gCO2e per kWh of the region's grid, or None (unavailable).
    intensity_source: the table and year the figure comes from, or why there is none.
    pue: power usage effectiveness applied to the energy.
    pue_source: where the PUE comes from.
  """

  region: str | None = None
  region_source: str = "unavailable: no region given (Experiment(region=...) or $JAXGREEN_REGION)"
  intensity: float | None = None
  intensity_source: str = "unavailable: no region"
  pue: float = data.DEFAULT_PUE[0]
  pue_source: str = data.DEFAULT_PUE[1]

  def co2e_g(self, joules: float | None) -> float | None:
    """Grams of CO2e for ``joules`` of IT energy; None when either is unknown."""
    if joules is None or self.intensity is None:
      return None
    return joules / J_PER_KWH * self.intensity * self.pue

  def label(self) -> str:
    """One line: the intensity, the PUE and their sources, or why CO2e is unavailable."""
    if self.intensity is None:
      return (self.intensity_source if self.region is not None else self.region_source)
    return (f"{self.region}: {self.intensity:g} gCO2e/kWh ({self.intensity_source}) x PUE "
            f"{self.pue:g} ({self.pue_source})")

  def values(self) -> tuple[Any, ...]:
    """The ledger's carbon columns (:data:`~jaxgreen._src.account.schema.CARBON_COLUMNS`)."""
    return (self.region, self.region_source, self.intensity, self.intensity_source,
            self.pue, self.pue_source)

  @classmethod
  def from_row(cls, row: Mapping[str, Any]) -> Carbon | None:
    """The carbon columns of a trial's row (schema 4), or None when never recorded."""
    if not row.get("region_source"):
      return None
    return cls(row.get("region"), row["region_source"], row.get("carbon_intensity"),
               row.get("carbon_source") or "unavailable: not recorded",
               float(row.get("pue") or data.DEFAULT_PUE[0]),
               row.get("pue_source") or data.DEFAULT_PUE[1])


def _canonical(region: str) -> str | None:
  """``provider:name`` or a country code for a region as the user writes it."""
  r = region.strip()
  low = r.lower()
  if ":" in low:
    provider, name = low.split(":", 1)
    if provider == "country":
      return name.upper()
    return f"{provider}:{name}"
  if r.upper() in data.COUNTRIES:
    return r.upper()
  for provider, table in (("gcp", GCP), ("aws", data.AWS), ("azure", data.AZURE)):
    if low in table:
      return f"{provider}:{low}"
  return None


def _known() -> str:
  return ("gcp:<region> (" + ", ".join(sorted(GCP)[:3]) + ", ...), aws:<region>, "
          "azure:<region>, or a country code (" + ", ".join(sorted(data.COUNTRIES)) + ")")


def _intensity(key: str) -> tuple[float | None, str, str | None]:
  """(gCO2e/kWh, source, provider) of a canonical region; (None, why, None) if unknown."""
  if key in data.COUNTRIES:
    name, g = data.COUNTRIES[key]
    return g, f"{name}: {data.COUNTRY_SOURCE}", None
  provider, _, name = key.partition(":")
  if provider == "gcp" and name in GCP:
    location, g = GCP[name]
    return g, f"{location} grid, {data.GCP_SOURCE}", "gcp"
  table = {"aws": data.AWS, "azure": data.AZURE}.get(provider)
  if table is not None and name in table:
    via, source, _ = _intensity(table[name])
    return via, f"{source}; {key} draws from the same grid as {table[name]}", provider
  return None, f"unavailable: no published intensity for {key!r} in jaxgreen's table", None


def lookup(region: str | None, pue: float | None = None, *,
           region_source: str = "given") -> Carbon:
  """The :class:`Carbon` of a named region (None: unavailable).

  Args:
    region: ``"gcp:us-central1"``, ``"aws:us-east-1"``, ``"azure:eastus"``, a country
      code such as ``"FR"``, or a cloud region's bare name; None when unknown.
    pue: the data centre's PUE (>= 1); default: the provider's published fleet
      average, else $JAXGREEN_PUE, else the industry average.
    region_source: how the region was found (stored with it).
  """
  pue_value, pue_source = _pue(pue, None)
  if region is None:
    return Carbon(pue=pue_value, pue_source=pue_source)
  if not isinstance(region, str) or not region.strip():
    raise ValueError(f"region={region!r} must be a region name such as 'gcp:us-central1', "
                     f"'aws:us-east-1', 'azure:eastus' or a country code such as 'FR'")
  key = _canonical(region)
  if key is None:
    return Carbon(region.strip(), region_source, None,
                  f"unavailable: {region!r} is not a region jaxgreen knows; use {_known()}",
                  pue_value, pue_source)
  g, source, provider = _intensity(key)
  pue_value, pue_source = _pue(pue, provider)
  return Carbon(key, region_source, g, source, pue_value, pue_source)


def _pue(pue: float | None, provider: str | None) -> tuple[float, str]:
  if pue is not None:
    check_pue(pue, "pue")
    return float(pue), "given"
  env = os.environ.get(PUE_ENV)
  if env:
    try:
      value = float(env)
    except ValueError:
      raise ValueError(f"${PUE_ENV}={env!r} must be a number >= 1, e.g. 1.1") from None
    check_pue(value, f"${PUE_ENV}")
    return value, f"${PUE_ENV}"
  return data.PUE.get(provider or "", data.DEFAULT_PUE)


def check_pue(pue: Any, arg: str = "pue") -> None:
  """Rejects anything but a number >= 1."""
  if isinstance(pue, bool) or not isinstance(pue, int | float) or not pue >= 1:
    raise ValueError(f"{arg}={pue!r} must be a power usage effectiveness >= 1 (facility "
                     f"energy / IT energy), e.g. 1.1")


# -- where this machine is -------------------------------------------------------------


def _firmware_vendor() -> str:
  """The VM's firmware vendor and product (Linux DMI), lower case; '' when unreadable."""
  parts = []
  for f in ("sys_vendor", "product_name", "bios_vendor"):
    with contextlib.suppress(OSError):
      with open(f"/sys/class/dmi/id/{f}") as fh:
        parts.append(fh.read().strip().lower())
  return " ".join(parts)


def _get(url: str, headers: Mapping[str, str], method: str = "GET",
         timeout: float = METADATA_TIMEOUT_S) -> tuple[str, Mapping[str, str]] | None:
  req = urllib.request.Request(url, headers=dict(headers), method=method)
  try:
    with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310 (http only)
      return r.read(256).decode("utf-8", "replace").strip(), dict(r.headers)
  except Exception:  # no service, refused, timed out, an error status
    return None


def _gcp(base: str) -> str | None:
  got = _get(f"{base}/computeMetadata/v1/instance/zone", {"Metadata-Flavor": "Google"})
  if got is None or got[1].get("Metadata-Flavor") != "Google":
    return None
  zone = got[0].rsplit("/", 1)[-1]  # projects/123/zones/us-central1-a
  return f"gcp:{zone.rsplit('-', 1)[0]}" if zone.count("-") >= 2 else None


def _aws(base: str) -> str | None:
  token = _get(f"{base}/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"},
               method="PUT")  # IMDSv2
  if token is None:
    return None
  got = _get(f"{base}/latest/meta-data/placement/region",
             {"X-aws-ec2-metadata-token": token[0]})
  return f"aws:{got[0]}" if got and got[0] else None


def _azure(base: str) -> str | None:
  got = _get(f"{base}/metadata/instance/compute/location?api-version=2021-02-01&format=text",
             {"Metadata": "true"})
  return f"azure:{got[0].lower()}" if got and got[0] else None


_PROBES = (("google", "gcp", _gcp), ("amazon", "aws", _aws), ("microsoft", "azure", _azure))


def detect_region(base: str | None = None) -> tuple[str | None, str]:
  """(region, how it was found) from this cloud VM's metadata service.

  Only a machine whose firmware names a cloud (Google, Amazon, Microsoft) is asked,
  unless ``$JAXGREEN_METADATA`` names the service's address (a test's fake server);
  ``$JAXGREEN_METADATA=off`` turns detection off. Each request times out after
  :data:`METADATA_TIMEOUT_S`. (None, why) when nothing answered.
  """
  env = os.environ.get(METADATA_ENV, "")
  if env.lower() == "off":
    return None, f"unavailable: no region given, detection off (${METADATA_ENV}=off)"
  url = base or env or None
  vendor = "" if url else _firmware_vendor()
  probes = [p for p in _PROBES if url or p[0] in vendor]
  if not probes:
    return None, ("unavailable: no region given (Experiment(region=...) or "
                  "$JAXGREEN_REGION), and this is not a cloud VM jaxgreen recognises")
  for _, provider, probe in probes:
    region = probe((url or METADATA_URL).rstrip("/"))
    if region is not None:
      return region, f"detected: {provider} metadata service"
  return None, "unavailable: no region given, and the cloud's metadata service did not answer"


class RegionFinder:
  """Finds the region once, in a background thread (never blocking start-up).

  ``RegionFinder(region)`` with a region (or ``$JAXGREEN_REGION``) needs no thread;
  otherwise it asks the metadata service in a daemon thread started at once, and
  :meth:`carbon` waits for that answer at most ``wait`` seconds.
  """

  def __init__(self, region: str | None = None, pue: float | None = None):
    if pue is not None:
      check_pue(pue)
    self._pue = pue
    self._found: tuple[str | None, str] | None = None
    self._thread: threading.Thread | None = None
    env = os.environ.get(REGION_ENV, "").strip()
    if region is not None:
      lookup(region, pue)  # a bad argument fails here, where it was given
      self._found = (region, "given: Experiment(region=...)")
    elif env:
      self._found = (env, f"${REGION_ENV}")
    else:
      self._thread = threading.Thread(target=self._detect, name="jaxgreen-region",
                                      daemon=True)
      self._thread.start()

  def _detect(self) -> None:
    self._found = detect_region()

  def carbon(self, wait: float = 4 * METADATA_TIMEOUT_S) -> Carbon:
    """The :class:`Carbon` of the region found (unavailable while none is)."""
    if self._thread is not None:
      self._thread.join(wait)
    found = self._found or (None, "unavailable: the metadata service has not answered yet")
    region, source = found
    if region is None:
      return dataclasses.replace(lookup(None, self._pue), region_source=source)
    return lookup(region, self._pue, region_source=source)
