"""Modal screens: help, confirmation and text prompts."""
