"""Ground floor: settings, errors, metric names, rank math, atomic files, console."""
