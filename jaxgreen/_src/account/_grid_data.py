"""Published grid carbon intensities and data-centre PUEs, each with its source and year.

Plain data, read by :mod:`jaxgreen._src.account.carbon`. Intensities are location-based
yearly averages in gCO2e per kWh of electricity drawn from the grid (not market-based:
no renewable-energy purchases are netted out).
"""

from __future__ import annotations

# Google Cloud, "Carbon free energy for Google Cloud regions": the yearly grid carbon
# intensity (gCO2eq/kWh) of each Cloud region's grid, and Google's CFE share, as
# published in github.com/GoogleCloudPlatform/region-carbon-info, data/yearly/2024.csv
# (also the BigQuery dataset bigquery-public-data.google_cfe.datacenter_cfe).
GCP_SOURCE = ("Google Cloud region carbon data, 2024 (GoogleCloudPlatform/region-carbon-info, "
              "data/yearly/2024.csv)")
GCP_YEAR = 2024
GCP_2024 = """\
africa-south1,Johannesburg,0.15,656.85
asia-east1,Taiwan,0.17,439.29
asia-east2,Hong Kong,0.01,505.02
asia-northeast1,Tokyo,0.17,452.85
asia-northeast2,Osaka,0.46,296.19
asia-northeast3,Seoul,0.37,356.57
asia-south1,Mumbai,0.09,678.76
asia-south2,Delhi,0.29,531.83
asia-southeast1,Singapore,0.04,366.85
asia-southeast2,Jakarta,0.18,560.55
australia-southeast1,Sydney,0.34,497.50
australia-southeast2,Melbourne,0.39,454.37
europe-central2,Warsaw,0.40,642.88
europe-north1,Finland,0.98,39.32
europe-north2,Stockholm,1.00,2.73
europe-southwest1,Madrid,0.87,89.04
europe-west1,Belgium,0.84,103.37
europe-west2,London,0.79,105.94
europe-west3,Frankfurt,0.68,275.82
europe-west4,Eemshaven,0.83,208.81
europe-west6,Zürich,0.98,15.05
europe-west8,Milan,0.73,201.69
europe-west9,Paris,0.96,16.30
europe-west10,Berlin,0.68,275.82
europe-west12,Turin,0.73,201.69
me-central2,Dammam,0.01,382.23
me-west1,Tel Aviv,0.07,433.75
northamerica-northeast1,Montréal,0.99,5.48
northamerica-northeast2,Toronto,0.84,58.56
northamerica-south1,Mexico,0.19,305.00
southamerica-east1,São Paulo,0.88,67.32
southamerica-west1,Santiago,0.92,238.00
us-central1,Iowa,0.87,412.72
us-east1,South Carolina,0.31,575.77
us-east2,Georgia,0.42,340.42
us-east4,Northern Virginia,0.62,323.05
us-south1,Dallas,0.94,302.95
us-west1,Oregon,0.87,79.23
us-west2,Los Angeles,0.63,169.28
us-west3,Salt Lake City,0.33,555.17
us-west4,Las Vegas,0.64,357.30
"""

# Ember, "Yearly Electricity Data", and Energy Institute, "Statistical Review of World
# Energy", processed by Our World in Data: "Carbon intensity of electricity generation"
# (ourworldindata.org/grapher/carbon-intensity-electricity), gCO2e/kWh, year 2024.
# ISO 3166 code -> (name, gCO2e/kWh).
COUNTRY_SOURCE = ("Ember and Energy Institute via Our World in Data, carbon intensity of "
                  "electricity generation, 2024")
COUNTRY_YEAR = 2024
COUNTRIES = {
    "AT": ("Austria", 103.0), "AU": ("Australia", 552.0), "BE": ("Belgium", 118.0),
    "CA": ("Canada", 175.0), "CH": ("Switzerland", 37.0), "CZ": ("Czechia", 414.0),
    "DE": ("Germany", 344.0), "DK": ("Denmark", 143.0), "EE": ("Estonia", 341.0),
    "FI": ("Finland", 72.0), "FR": ("France", 44.0), "GB": ("United Kingdom", 211.0),
    "NL": ("Netherlands", 253.0), "NO": ("Norway", 31.0), "PL": ("Poland", 615.0),
    "SE": ("Sweden", 36.0), "US": ("United States", 384.0),
}

# AWS and Azure regions -> the grid they draw from: a Google Cloud region in the same
# city (the same grid zone, so Google's 2024 figure for that grid applies), or a country
# whose grid is one zone or whose average is the best published figure. Locations from
# the providers' region lists (docs.aws.amazon.com "Regions and Zones"; Azure "Azure
# geographies"). A region not listed here is unavailable, never guessed.
AWS = {
    "us-east-1": "gcp:us-east4", "us-east-2": "US", "us-west-1": "US", "us-west-2": "US",
    "ca-central-1": "gcp:northamerica-northeast1", "eu-central-1": "gcp:europe-west3",
    "eu-central-2": "gcp:europe-west6", "eu-west-2": "gcp:europe-west2",
    "eu-west-3": "gcp:europe-west9", "eu-north-1": "SE", "eu-south-1": "gcp:europe-west8",
    "eu-south-2": "gcp:europe-southwest1", "ap-northeast-1": "gcp:asia-northeast1",
    "ap-northeast-2": "gcp:asia-northeast3", "ap-northeast-3": "gcp:asia-northeast2",
    "ap-southeast-1": "gcp:asia-southeast1", "ap-southeast-2": "gcp:australia-southeast1",
    "ap-southeast-3": "gcp:asia-southeast2", "ap-south-1": "gcp:asia-south1",
    "ap-east-1": "gcp:asia-east2", "sa-east-1": "gcp:southamerica-east1",
    "af-south-1": "gcp:africa-south1", "il-central-1": "gcp:me-west1",
}
AZURE = {
    "eastus": "gcp:us-east4", "eastus2": "gcp:us-east4", "centralus": "gcp:us-central1",
    "westus": "US", "westus2": "US", "westus3": "US", "southcentralus": "US",
    "northcentralus": "US", "westeurope": "gcp:europe-west4", "uksouth": "gcp:europe-west2",
    "francecentral": "gcp:europe-west9", "germanywestcentral": "gcp:europe-west3",
    "switzerlandnorth": "gcp:europe-west6", "swedencentral": "SE", "norwayeast": "NO",
    "polandcentral": "gcp:europe-central2", "italynorth": "gcp:europe-west8",
    "spaincentral": "gcp:europe-southwest1", "japaneast": "gcp:asia-northeast1",
    "japanwest": "gcp:asia-northeast2", "koreacentral": "gcp:asia-northeast3",
    "southeastasia": "gcp:asia-southeast1", "eastasia": "gcp:asia-east2",
    "australiaeast": "gcp:australia-southeast1", "brazilsouth": "gcp:southamerica-east1",
    "canadacentral": "gcp:northamerica-northeast2", "canadaeast": "CA",
}

# Power usage effectiveness (facility energy / IT energy), by provider.
PUE = {
    # Google, "Data center efficiency" (google.com/about/datacenters/efficiency):
    # fleet-wide trailing twelve-month PUE 1.09 in 2024.
    "gcp": (1.09, "Google data centers, fleet-wide trailing twelve-month PUE, 2024"),
    # Amazon, 2024 sustainability report: AWS global PUE 1.15 in 2024.
    "aws": (1.15, "AWS global data-centre PUE, Amazon 2024 sustainability report"),
}
# Any other data centre (Azure publishes design PUEs of new sites, not a fleet
# average; an on-premises machine room; a country): the industry average.
DEFAULT_PUE = (1.56, "industry average, Uptime Institute Global Data Center Survey 2024")
