"""A plug-in as a user would write one: an architecture and an interval method registered from
outside mdmlib (config key ``plugins: [toy_plugin]``). Torch-free, like the registries: the
class and the method's function live in ``toy_plugin_models`` and load only when used."""
from mdmlib.intervals.registry import IntervalMethod, register_method
from mdmlib.models.registry import Architecture, register_architecture


def toy_arguments(cfg, in_channels: int, resolution: int) -> dict:
    return {"in_channels": in_channels, "resolution": resolution, "width": cfg.base_channels}


register_architecture(Architecture("toy_denoiser", "toy_plugin_models:ToyDenoiser", toy_arguments))
register_method(IntervalMethod("squares", "toy_plugin_models:select_squares"))
