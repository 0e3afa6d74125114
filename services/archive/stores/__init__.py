"""Where archive files are kept: the store port, a local directory, an S3 bucket."""
