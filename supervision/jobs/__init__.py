"""Survey checks as jobs: the embedded worker pool or Dramatiq on Redis,
the same job code either way (docs/uploads.md)."""
