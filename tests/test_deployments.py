"""Deployments on every backend: deploy, canary, A/B, shadow, promote, rollback, forced deploys, history."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from stead.errors import ConflictError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from stead.client import Client


@pytest.fixture
def three(client: Client) -> Client:
    """``churn`` versions 1-3 (small logistic regressions); ``champion`` -> 1."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60)})
    y = (X["a"] + X["b"] > 0).astype(int)
    for c in (0.5, 1.0, 2.0):
        client.register_model("churn", LogisticRegression(C=c).fit(X, y), input_example=X.head())
    client.set_alias("churn", "champion", 1)
    return client


def _routes(d: object) -> list[tuple[int, str, float]]:
    return [(r.version, r.kind, r.weight) for r in d.routes]  # type: ignore[attr-defined]


def test_deploy_pins_the_alias_and_records_the_revision(three: Client) -> None:
    d = three.deploy("churn@champion", "churn-api")
    assert d.revision == 1 and d.model == "churn"
    assert _routes(d) == [(1, "primary", 1.0)]
    three.set_alias("churn", "champion", 2)
    assert _routes(three.get_deployment("churn-api")) == [(1, "primary", 1.0)]  # pinned, not following the alias
    [rev] = three.get_deployment("churn-api").history
    assert rev.actor == "tester" and rev.source == "deploy" and rev.at is not None
    edges = three.store.edges_of(["deployment:churn-api"], "up")
    assert {(e["source"], e["kind"]) for e in edges} == {("version:churn/1", "serves")}
    assert edges[0]["attrs"]["share"] == 1.0


def test_canary_shadow_promote_and_rollback(three: Client) -> None:
    three.deploy("churn/1", "api")
    d = three.deploy("churn/2", "api", canary=10, reason="try v2")
    assert _routes(d) == [(1, "primary", 0.9), (2, "canary", 0.1)]
    d = three.deploy("churn/3", "api", shadow=True)
    assert _routes(d) == [(1, "primary", 0.9), (2, "canary", 0.1), (3, "shadow", 1.0)]
    d = three.promote("api")
    assert _routes(d) == [(2, "primary", 1.0)]
    assert three.get_model_version("churn", "champion").version == 2
    moves = three.alias_history("churn", "champion")
    assert (moves[-1].from_version, moves[-1].to_version) == (1, 2)
    d = three.rollback("api")
    assert d.revision == 5
    assert _routes(d) == [(1, "primary", 0.9), (2, "canary", 0.1), (3, "shadow", 1.0)]
    assert three.get_model_version("churn", "champion").version == 1  # the promote is undone too
    sources = [r.source for r in three.get_deployment("api").history]
    assert sources == ["deploy", "canary", "shadow", "promote", "rollback"]
    assert [d.name for d in three.list_deployments()] == ["api"]


def test_ab_is_exclusive_with_canary_and_needs_a_primary(three: Client) -> None:
    with pytest.raises(ValidationError, match="needs a primary"):
        three.deploy("churn/2", "api", ab=50)
    three.deploy("churn/1", "api")
    three.deploy("churn/2", "api", canary=5)
    d = three.deploy("churn/3", "api", ab=50)
    assert _routes(d) == [(1, "primary", 0.5), (3, "ab", 0.5)]
    with pytest.raises(ValidationError, match="percentage above 0 and below 100"):
        three.deploy("churn/3", "api", canary=100)
    with pytest.raises(ValidationError, match="one of canary, ab and shadow"):
        three.deploy("churn/3", "api", canary=5, shadow=True)


def test_nothing_to_promote_or_roll_back(three: Client) -> None:
    three.deploy("churn/1", "api")
    with pytest.raises(ConflictError, match="no canary or A/B route to promote"):
        three.promote("api")
    with pytest.raises(ConflictError, match="nothing to roll back to"):
        three.rollback("api")
    with pytest.raises(NotFoundError, match="Known deployments: api"):
        three.get_deployment("nope")


def test_rejected_version_needs_force_with_reason(three: Client) -> None:
    three.set_version_state("churn", 3, "rejected", reason="auc too low")
    three.deploy("churn/1", "api")
    with pytest.raises(ConflictError, match="rejected: it may not serve"):
        three.deploy("churn/3", "api", canary=10)
    with pytest.raises(ValidationError, match="--force needs --reason"):
        three.deploy("churn/3", "api", canary=10, force=True)
    d = three.deploy("churn/3", "api", canary=10, force=True, reason="hotfix for the holiday traffic")
    assert _routes(d)[-1] == (3, "canary", 0.1)
    [row] = [r for r in three.audit_log("model:churn/3") if r["action"] == "force_deploy"]
    assert row["reason"] == "hotfix for the holiday traffic" and row["details"]["deployment"] == "api"


def test_stale_revision_is_a_conflict(three: Client) -> None:
    three.deploy("churn/1", "api")
    routes = [{"model": "churn", "version": 2, "kind": "primary", "weight": 1.0}]
    with pytest.raises(ConflictError, match="changed in between"):
        three.store.write_deployment("api", routes, 0)
    assert three.store.deployment_revisions() == {"api": 1}
