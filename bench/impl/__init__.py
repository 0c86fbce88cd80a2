"""Server implementations: the manifest format, the controller API and the registry."""
