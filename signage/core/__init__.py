"""The product's core: floor feeds, the space directory, the kiosk hub, room rules, the building,
layouts and wayfinding. Knows Density (through signage.density) and nothing of Flask, the
database or Redis: those layers call in, never the other way."""
