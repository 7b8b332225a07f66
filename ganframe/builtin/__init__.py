"""The core's own standard parts, registered through the same hooks as any plugin."""
