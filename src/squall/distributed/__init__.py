"""Model sharding over the grid: ranks grouped into model groups, each rank one grid shard.

groups.py makes the groups; exchange.py moves rows between the shards of a group (with
autograd); grid_sharding.py is one rank's layout of the network and its sharded forward;
lightning.py installs it into a training run.
"""
