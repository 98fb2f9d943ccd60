"""CO2e = kWh x grid intensity x PUE: the tables, the region's resolution (given, the
environment, a cloud VM's metadata service faked on loopback), and the figure in the
ledger and the price tag; "unavailable" when the region is unknown, never a guess."""

from __future__ import annotations

import http.server
import json
import threading
import time

import jax
import jax.numpy as jnp
import pytest

from jaxgreen._src.account import Experiment, Ledger, carbon, track
from jaxgreen._src.account import _grid_data as data
from jaxgreen._src.account.pricetag import PriceTag, TrialCost


@pytest.fixture(autouse=True)
def _no_region(monkeypatch):
  """No region from the test machine's environment or its own metadata service."""
  monkeypatch.delenv(carbon.REGION_ENV, raising=False)
  monkeypatch.delenv(carbon.PUE_ENV, raising=False)
  monkeypatch.setenv(carbon.METADATA_ENV, "off")


def test_gcp_regions_carry_googles_figure_source_and_year():
  c = carbon.lookup("gcp:europe-west9")
  # Google's 2024 table: europe-west9 (Paris) 16.30 gCO2eq/kWh; Google's fleet PUE 1.09
  assert (c.region, c.intensity, c.pue) == ("gcp:europe-west9", 16.30, 1.09)
  assert "2024" in c.intensity_source and "region-carbon-info" in c.intensity_source
  assert "Google" in c.pue_source and "2024" in c.pue_source
  assert carbon.lookup("us-central1").region == "gcp:us-central1"  # bare name: unambiguous
  assert len(carbon.GCP) == len(data.GCP_2024.splitlines()) == 41


def test_aws_and_azure_regions_use_the_same_grids_published_figure():
  aws = carbon.lookup("aws:us-east-1")  # Northern Virginia: the grid of gcp:us-east4
  assert aws.intensity == carbon.GCP["us-east4"][1] == 323.05
  assert aws.pue == 1.15 and "AWS" in aws.pue_source
  assert "aws:us-east-1 draws from the same grid as gcp:us-east4" in aws.intensity_source
  az = carbon.lookup("eastus")  # Azure's bare name; Azure publishes no fleet PUE
  assert (az.region, az.intensity, az.pue) == ("azure:eastus", 323.05, data.DEFAULT_PUE[0])
  country = carbon.lookup("aws:eu-north-1")  # Sweden: the country's Ember figure
  assert country.intensity == data.COUNTRIES["SE"][1] and "Ember" in country.intensity_source


def test_countries_by_iso_code():
  fr = carbon.lookup("FR")
  assert (fr.region, fr.intensity) == ("FR", 44.0)  # Ember/OWID 2024, France
  assert "2024" in fr.intensity_source and "Ember" in fr.intensity_source
  assert fr.pue == 1.56 and "Uptime" in fr.pue_source  # industry average


def test_an_unknown_region_is_unavailable_never_guessed():
  c = carbon.lookup("aws:eu-west-1")  # Ireland: not in the country table
  assert c.intensity is None and c.co2e_g(3.6e6) is None
  assert c.label().startswith("unavailable") and "aws:eu-west-1" in c.label()
  mars = carbon.lookup("mars-north1")
  assert mars.intensity is None and "not a region jaxgreen knows" in mars.intensity_source
  none = carbon.lookup(None)
  assert none.co2e_g(1e9) is None and none.label().startswith("unavailable: no region")


def test_co2e_is_kwh_times_intensity_times_pue():
  c = carbon.lookup("gcp:us-central1")
  joules = 7.2e6  # 2 kWh
  assert c.co2e_g(joules) == pytest.approx(2 * 412.72 * 1.09)  # kWh x g/kWh x PUE
  given = carbon.lookup("gcp:us-central1", pue=1.5)
  assert (given.pue, given.pue_source) == (1.5, "given")
  assert given.co2e_g(joules) == pytest.approx(2 * 412.72 * 1.5)


def test_pue_from_the_environment_and_bad_values(monkeypatch):
  monkeypatch.setenv(carbon.PUE_ENV, "1.2")
  c = carbon.lookup("FR")
  assert (c.pue, c.pue_source) == (1.2, "$JAXGREEN_PUE")
  for bad in (0.9, "1.1", True):
    with pytest.raises(ValueError, match="pue"):
      carbon.lookup("FR", pue=bad)
  with pytest.raises(ValueError, match="region="):
    carbon.lookup("  ")


class _FakeMetadata(http.server.BaseHTTPRequestHandler):
  """Answers as one cloud's metadata service does (set ``cloud`` on the class)."""

  cloud = "gcp"
  seen: list[str] = []

  def log_message(self, *a):  # quiet
    pass

  def _reply(self, body: str, headers: dict[str, str] | None = None, status: int = 200):
    self.send_response(status)
    for k, v in (headers or {}).items():
      self.send_header(k, v)
    self.send_header("Content-Length", str(len(body)))
    self.end_headers()
    self.wfile.write(body.encode())

  def do_GET(self):
    self.seen.append(self.path)
    if (self.cloud == "gcp" and self.path == "/computeMetadata/v1/instance/zone"
        and self.headers.get("Metadata-Flavor") == "Google"):
      return self._reply("projects/1234/zones/europe-west4-a", {"Metadata-Flavor": "Google"})
    if (self.cloud == "aws" and self.path == "/latest/meta-data/placement/region"
        and self.headers.get("X-aws-ec2-metadata-token") == "tok"):
      return self._reply("eu-central-1")
    if (self.cloud == "azure" and self.path.startswith("/metadata/instance/compute/location")
        and self.headers.get("Metadata") == "true"):
      return self._reply("westeurope")
    return self._reply("not found", status=404)

  def do_PUT(self):
    self.seen.append(self.path)
    if self.cloud == "aws" and self.path == "/latest/api/token":
      return self._reply("tok")
    return self._reply("not found", status=404)


@pytest.fixture
def fake_metadata(monkeypatch):
  server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeMetadata)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  monkeypatch.setenv(carbon.METADATA_ENV, f"http://127.0.0.1:{server.server_port}")
  _FakeMetadata.seen = []
  yield _FakeMetadata
  server.shutdown()
  server.server_close()
  thread.join(timeout=10)


@pytest.mark.parametrize("cloud,region", [("gcp", "gcp:europe-west4"),
                                          ("aws", "aws:eu-central-1"),
                                          ("azure", "azure:westeurope")])
def test_the_region_is_read_from_each_clouds_metadata_service(fake_metadata, cloud, region):
  fake_metadata.cloud = cloud
  found, how = carbon.detect_region()
  assert (found, how) == (region, f"detected: {cloud} metadata service")


def test_no_metadata_service_is_unavailable_within_the_timeouts(monkeypatch):
  import socket

  s = socket.socket()  # a port on loopback with no server: connections are refused
  s.bind(("127.0.0.1", 0))
  port = s.getsockname()[1]
  s.close()
  monkeypatch.setenv(carbon.METADATA_ENV, f"http://127.0.0.1:{port}")
  t0 = time.monotonic()
  found, how = carbon.detect_region()
  assert found is None and how.startswith("unavailable")
  assert time.monotonic() - t0 < 3 * 3 * carbon.METADATA_TIMEOUT_S  # 3 clouds, short waits


def test_detection_is_off_on_request_and_off_a_cloud_vm(monkeypatch):
  assert carbon.detect_region()[1].endswith("detection off ($JAXGREEN_METADATA=off)")
  monkeypatch.delenv(carbon.METADATA_ENV)
  monkeypatch.setattr(carbon, "_firmware_vendor", lambda: "qemu standard pc")
  found, how = carbon.detect_region()
  assert found is None and "not a cloud VM" in how


def test_region_finder_never_blocks_and_prefers_the_argument_then_the_env(monkeypatch,
                                                                          fake_metadata):
  assert carbon.RegionFinder("FR").carbon().region == "FR"
  monkeypatch.setenv(carbon.REGION_ENV, "gcp:us-west1")
  c = carbon.RegionFinder().carbon()
  assert (c.region, c.region_source) == ("gcp:us-west1", "$JAXGREEN_REGION")
  monkeypatch.delenv(carbon.REGION_ENV)
  fake_metadata.cloud = "gcp"
  t0 = time.monotonic()
  finder = carbon.RegionFinder()
  assert time.monotonic() - t0 < 0.5  # detection runs in a thread
  c = finder.carbon()
  assert (c.region, c.region_source) == ("gcp:europe-west4",
                                         "detected: gcp metadata service")
  with pytest.raises(ValueError, match="region="):
    carbon.RegionFinder("")


def _run(tmp_path, **kw) -> PriceTag:
  path = tmp_path / "c.sqlite"
  step = track(jax.jit(lambda x: x * 2.0 + 1.0), examples="x")
  with Experiment("co2", ledger=path, measure_energy=False, **kw) as exp:
    with exp.trial({"lr": 0.1}):
      for _ in range(3):
        step(jnp.ones(8))
  with Ledger(path, readonly=True) as led:
    return led.price_tag("co2", joules_per_flop=1e-3)


def test_a_tracked_experiment_with_a_region_stores_and_reports_co2e(tmp_path):
  tag = _run(tmp_path, region="gcp:us-central1")
  (t,) = tag.trials
  assert t.carbon == carbon.lookup("gcp:us-central1", region_source="given: "
                                                                    "Experiment(region=...)")
  joules = 3 * 2 * 8 * 1e-3  # 3 calls x (8 MUL + 8 ADD) FPO x 1e-3 J/FLOP (given)
  grams, label = tag.co2e()
  assert grams == pytest.approx(joules / 3.6e6 * 412.72 * 1.09)  # kWh x g/kWh x PUE
  assert label.startswith("estimate energy x gcp:us-central1: 412.72 gCO2e/kWh")
  assert "region-carbon-info" in label and "PUE 1.09" in label
  assert "CO2e = kWh x gCO2e/kWh x PUE" in tag.table() and "412.72" in tag.markdown()
  d = json.loads(tag.to_json())
  assert d["co2e_g"] == pytest.approx(grams) and d["trials"][0]["carbon"]["pue"] == 1.09


def test_without_a_region_co2e_is_unavailable_and_says_why(tmp_path):
  tag = _run(tmp_path)
  grams, label = tag.co2e()
  assert grams is None and label.startswith("unavailable: no region given")
  assert tag.trials[0].carbon.region is None  # recorded as unknown, not left out
  assert "unavailable: no region given" in tag.table()


def test_co2e_needs_energy_too():
  t = TrialCost(id="t", experiment="e", name="t", hparams={}, status="completed",
                train_steps=1, train_examples=1, train_fpo=10, eval_steps=0, eval_examples=0,
                eval_fpo=0, wall_s=1.0, device_kind="cpu", device_count=1, exact=True,
                energy_j=None, energy_source=None, carbon=carbon.lookup("FR"))
  grams, label = PriceTag("e", (t,)).co2e()  # a CPU: no J/FLOP figure, no energy
  assert grams is None and label.startswith("unavailable") and "cpu" in label
  measured = PriceTag("e", (TrialCost(**{**t.__dict__, "energy_j": 3.6e6,
                                         "energy_source": "NVML"}),))
  grams, label = measured.co2e()
  assert grams == pytest.approx(1 * 44.0 * 1.56)  # 1 kWh x France 2024 x industry PUE
  assert label.startswith("measured (NVML) energy x FR: 44 gCO2e/kWh")
