"""The config: layers merged in order, every mistake one line, the synthetic set's floors."""

import pytest

from convperceiver.config import SYNTHETIC_MINIMUMS, load_config, save_config
from convperceiver.data.synthetic import generate_synthetic
from convperceiver.errors import ConfigError


def test_defaults_yaml_and_overrides_merge_in_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  cnn_blocks: 6\n  self_blocks: 3\noptim:\n  lr: 0.01\n")
    config = load_config(path, ["model.self_blocks=2", "data.resize=[64,80]"])
    assert config.model.cnn_blocks == 6
    assert config.model.self_blocks == 2
    assert config.optim.lr == 0.01
    assert config.data.resize == [64, 80]
    assert config.model.num_latents == 256


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.foo=1", r"'model.foo'.*valid keys: arch, cnn_blocks"),
        ("nosection.x=1", r"'nosection'.*valid keys: model, data, eval, optim, trainer, run"),
        ("model.cnn_blocks=abc", r"'model.cnn_blocks'.*could not be converted"),
        ("model.cnn_blocks=9", r"model.cnn_blocks=9 must be in 1..8"),
        ("model.cnn_blocks=0", r"model.cnn_blocks=0 must be in 1..8"),
        ("model.arch=vit", r"model.arch='vit' is not one of: hybrid, baseline"),
        ("optim.scheduler=poly", r"is not one of: cosine, step, none"),
        ("trainer.precision=64", r"is not one of: 32, bf16-mixed, 16-mixed, auto"),
        ("data.split=4", r"data.split=4 must be 1, 2 or 3"),
        ("cnn_blocks", r"not of the form key=value"),
        ("data.synth_classes=4", r"'data.synth_classes' is now 'data.synthetic.classes'"),
        ("data.synthetic.clases=4", r"'data.synthetic.clases'.*valid keys: classes, videos_per"),
        ("data.synthetic.size=8", r"data\.synthetic\.size=8 must be >= 16 \(.*marker"),
        ("data.synthetic.frames=1", r"data\.synthetic\.frames=1 must be >= 2 \(.*reversed"),
        ("data.synthetic.videos_per_class=2", r"videos_per_class=2 must be >= 3 \(.*film"),
        ("data.synthetic.seed=-1", r"data\.synthetic\.seed=-1 must be >= 0"),
        ("data.synthetic.classes=3", r"classes=3 must be an even number from 2 to 14"),
        ("data.synthetic.classes=16", r"classes=16 must be an even number from 2 to 14"),
    ],
)
def test_bad_config_is_one_clear_line(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, [override])
    assert "\n" not in str(error.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match=r"config file not found: .*missing\.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_unknown_key_in_yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  latent_dims: 128\n")
    with pytest.raises(ConfigError, match="latent_dims"):
        load_config(path)


def test_old_key_in_yaml_file_names_its_new_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  synth_size: 32\n")
    renamed = r"c\.yaml: config key 'data.synth_size' is now 'data.synthetic.size'"
    with pytest.raises(ConfigError, match=renamed):
        load_config(path)


def test_broken_yaml_names_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match=r"cannot read config .*c\.yaml"):
        load_config(path)


def test_saved_config_loads_back_identically(tmp_path):
    config = load_config(None, ["model.cnn_blocks=5", "optim.lr=0.003", "data.mean=[0.5,0.5,0.5]"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


def test_the_smallest_synthetic_set_the_config_allows_is_one_the_generator_writes(tmp_path):
    floors = {key: low for key, (low, _) in SYNTHETIC_MINIMUMS.items()}
    config = load_config(None, [f"data.synthetic.{key}={low}" for key, low in floors.items()])
    assert {key: getattr(config.data.synthetic, key) for key in floors} == floors
    root = generate_synthetic(tmp_path / "set", classes=2, workers=1, **floors)
    assert len(list(root.glob("videos/*/*.avi"))) == 2 * floors["videos_per_class"]
