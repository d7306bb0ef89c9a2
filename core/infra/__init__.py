"""What every domain stands on and none of them owns: the database, the cache and its pipe, rate
limits, deadlines, settings, errors, metrics, logs, mail, security, the clock, pagination."""
