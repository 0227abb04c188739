"""The embedded platform: the whole stack as local processes (`make up`, `make demo`)."""
