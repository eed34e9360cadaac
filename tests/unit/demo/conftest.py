from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shared.cli.demo.world import World, world_from_documents

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"

# The policy of architecture §4.2, smaller than the deployed demo policy.
SMALL_POLICY = yaml.safe_load("""
base_currency: EUR
fx_rates: {USD: "0.92", GBP: "1.17", SEK: "0.087", NOK: "0.085"}
auto_approve_below: "500.00"
users:
  - {id: alice, name: Alice Ng, manager: bob}
  - {id: bob, name: Bob Ortiz, manager: carol, approval_limit: "5000.00"}
  - {id: carol, name: Carol Ruiz, manager: dana, approval_limit: "50000.00"}
  - {id: dana, name: Dana Wu}
  - {id: ivan, name: Ivan Petrov, manager: carol, approval_limit: "5000.00"}
cost_centers:
  - {id: CC-100, name: Engineering, owner: bob}
rules:
  - {name: it-review, when: {category: IT}, approvers: [ivan], mode: all}
  - {name: big-spend, when: {min_amount: "100000.00"}, approvers: [dana], mode: any}
""")


@pytest.fixture(scope="session")
def world() -> World:
    """The deployed demo policy and tolerances, as the demo reads them."""
    return world_from_documents(yaml.safe_load((DEPLOY / "approval-policy.yaml").read_text()),
                                yaml.safe_load((DEPLOY / "tolerances.yaml").read_text()))


@pytest.fixture(scope="session")
def small_world() -> World:
    return world_from_documents(SMALL_POLICY, {"default": {"price_pct": "2"}})
