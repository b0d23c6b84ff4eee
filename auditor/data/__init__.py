"""Cases and suites: the records, suite files, resolution, selection, the RefusEU hub loader, synthetic
runs, shards and merging, and the languages refuseu knows."""
