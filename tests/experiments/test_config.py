import pytest

from experiments.config import ConfigError, ExperimentConfig, resolve_config, shipped_configs

BASE = {
    "timesteps": 1000,
    "seeds": 2,
    "agents": {
        "random": {},
        "cqi": {"hyperparameters": {"learning_rate": 0.1}, "grid": {"split_threshold": [0.5, 2.0]}},
    },
}


def test_shipped_configs_are_valid():
    assert {"demo", "benchmark"} <= set(shipped_configs())
    for name in shipped_configs():
        config = ExperimentConfig.from_yaml(name)
        assert config.run_specs()


def test_expansion_into_runs():
    config = ExperimentConfig.from_dict({**BASE, "env_grid": {"churn_rate": [0.0, 0.01]}}, source="x.yaml")
    specs = config.run_specs()
    # random: 2 env variants x 2 seeds; cqi: 2 env variants x 2 thresholds x 2 seeds
    assert len(specs) == 4 + 8
    labels = {label for label, spec in specs if spec.agent == "cqi"}
    assert "churn_rate=0.01,split_threshold=0.5" in labels
    cqi = [spec for label, spec in specs if label == "churn_rate=0,split_threshold=2"]
    assert {s.seed for s in cqi} == {0, 1}
    assert cqi[0].hyperparameters == {"learning_rate": 0.1, "split_threshold": 2.0}
    assert cqi[0].env == {"churn_rate": 0.0}


def test_round_trip_through_dict():
    config = ExperimentConfig.from_dict(BASE, source="x.yaml")
    again = ExperimentConfig.from_dict(config.to_dict(), source="x.yaml")
    assert again.run_specs() == config.run_specs()


def test_the_planner_reference_can_be_switched_off():
    """``eval: {planner: false}`` reaches every run; the default leaves sweep.yaml as it was."""
    default = ExperimentConfig.from_dict(BASE, source="x.yaml")
    assert "planner" not in default.to_dict()["eval"]
    assert all(spec.planner for _, spec in default.run_specs())
    off = ExperimentConfig.from_dict({**BASE, "eval": {"episodes": 5, "planner": False}}, source="x.yaml")
    assert off.to_dict()["eval"]["planner"] is False
    assert not any(spec.planner for _, spec in off.run_specs())
    assert ExperimentConfig.from_dict(off.to_dict(), source="x.yaml").run_specs() == off.run_specs()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"agnets": {}}, "agnets: unknown key"),
        ({"timesteps": 0}, "timesteps: expected a whole number >= 1"),
        ({"timesteps": "lots"}, "timesteps: expected a whole number"),
        ({"seeds": [1, 1]}, "seeds: each seed may appear once"),
        ({"seeds": [1, -2]}, r"seeds\[1\]: expected a whole number >= 0"),
        ({"agents": {}}, "agents: expected at least one agent"),
        ({"agents": {"alphago": {}}}, "agents.alphago: unknown agent"),
        (
            {"agents": {"cqi": {"grid": {"split_threshold": 3}}}},
            r"agents.cqi.grid.split_threshold: expected a non-empty list",
        ),
        ({"agents": {"cqi": {"hyperparams": {}}}}, "agents.cqi.hyperparams: unknown key"),
        ({"eval": {"every": 0}}, "eval.every: expected a whole number >= 1"),
        ({"eval": {"often": 1}}, "eval.often: unknown key"),
        ({"eval": {"planner": "no"}}, "eval.planner: expected true or false, got 'no'"),
        ({"env": {"n_influencer": 10}}, "env.n_influencer: unknown environment option"),
        (
            {"env": {"churn_rate": 0.1}, "env_grid": {"churn_rate": [0.0]}},
            "env_grid.churn_rate: also set in env",
        ),
        ({"name": "my demo"}, "name: use letters"),
    ],
)
def test_errors_name_the_key(change, message):
    data = {**BASE, **change}
    with pytest.raises(ConfigError, match=f"x.yaml: {message}"):
        ExperimentConfig.from_dict(data, source="x.yaml")


def test_missing_required_key_and_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="x.yaml: agents: missing"):
        ExperimentConfig.from_dict({"timesteps": 1, "seeds": 1}, source="x.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("agents: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line 2"):
        ExperimentConfig.from_yaml(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        resolve_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="expected a mapping"):
        ExperimentConfig.from_dict([1, 2], source="x.yaml")
