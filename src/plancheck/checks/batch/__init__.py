"""The nightly batch: spill the feed into partitions by employer and employee, check them in parallel, merge in order."""
