"""Revision scripts; alembic skips this file. A package so the scripts ship in wheels."""
