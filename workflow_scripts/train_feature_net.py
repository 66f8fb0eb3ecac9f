"""Train the offline feature network used by every metric."""
from mdmlib.runtime.logs import log_to

log_to(snakemake.log[0])

import json

from mdmlib.config import load_config
from mdmlib.data.splits import load_split
from mdmlib.metrics.features import save_feature_net, train_feature_net
from mdmlib.runtime.devices import job_device

cfg = load_config(snakemake.config)
device = job_device(snakemake.threads)
train_images, train_labels = load_split(snakemake.input.train)
val_images, val_labels = load_split(snakemake.input.val)
net, info = train_feature_net(cfg.metrics.feature_net, train_images, train_labels, val_images, val_labels,
                              device=device, log=print)
save_feature_net(snakemake.output.net, net, info, cfg.metrics.feature_net)
with open(snakemake.output.info, "w") as f:
    json.dump(info, f, indent=2)
