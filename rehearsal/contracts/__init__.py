"""Pure functions that apply a real tool's documented rules to its input; each names its upstream source."""
