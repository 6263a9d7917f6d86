"""Shared fixtures: real servers (PostgreSQL, Redis, an S3-compatible endpoint) and settings."""

pytest_plugins = [
    "tests.fixtures.databases",
    "tests.fixtures.live_server",
    "tests.fixtures.redis",
    "tests.fixtures.s3",
]
