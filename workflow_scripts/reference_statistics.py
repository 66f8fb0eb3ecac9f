"""Cache the feature statistics of the validation split (EDM fid.py's `ref` step)."""
import sys

sys.stdout = sys.stderr = open(snakemake.log[0], "w", buffering=1)

from mdmlib.config import load_config
from mdmlib.data import load_split
from mdmlib.features import feature_network_name, load_feature_net
from mdmlib.metrics import compute_reference
from mdmlib.plan import job_device

job_device(snakemake.threads)
net, info = load_feature_net(snakemake.input.net)
images, _ = load_split(snakemake.input.val)
name = feature_network_name(info, load_config(snakemake.config).data.dataset)
compute_reference(net, images, snakemake.output[0], feature_network=name)
print(f"reference statistics of {len(images)} validation images -> {snakemake.output[0]}")
