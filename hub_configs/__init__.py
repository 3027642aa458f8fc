"""YAML specs of the named pretrained models; shipped in the wheel as `semsyn.hub_configs`."""
