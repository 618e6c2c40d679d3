"""Programs with known races that pass under the plain virtual-time schedule, and their fixes."""
