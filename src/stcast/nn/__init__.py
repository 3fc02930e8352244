"""Reusable layers shared by several models: pretrained backbones and their adaptation hooks."""
