"""One durable job system for every kind of background work (see `queue` and `worker`)."""
