"""Tests for ml-serving-service."""
